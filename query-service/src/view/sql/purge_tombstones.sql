-- Deletes up to $2 tombstones older than $1 seconds, oldest first, keeping each purged id
-- in purged_users; returns how many went.
WITH purged AS (
    DELETE FROM {table} WHERE id IN (
        SELECT id FROM {table}
        WHERE deleted AND updated_at < now() - make_interval(secs => $1)
        ORDER BY updated_at LIMIT $2)
    RETURNING id
),
kept AS (
    INSERT INTO purged_users (id) SELECT id FROM purged
    ON CONFLICT (id) DO NOTHING
)
SELECT count(*) FROM purged
