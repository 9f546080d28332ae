-- Cheap at any size: an exact count up to 10,000 rows, beyond that the span of ids (an upper
-- bound, read from the primary key); the oldest row through the primary key; parked rows
-- through their partial index.
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT 10000) AS capped),
    (SELECT max(id) - min(id) + 1 FROM outbox),
    COALESCE(EXTRACT(EPOCH FROM now() - (SELECT occurred_at FROM outbox ORDER BY id LIMIT 1)), 0)::float8,
    (SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL)
