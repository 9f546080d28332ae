-- Up to $2 records older than the retention ($1 seconds), oldest first; returns how many went.
WITH purged AS (
    DELETE FROM request_ids WHERE request_id IN (
        SELECT request_id FROM request_ids
        WHERE created_at < now() - make_interval(secs => $1)
        ORDER BY created_at LIMIT $2)
    RETURNING 1
)
SELECT count(*) FROM purged
