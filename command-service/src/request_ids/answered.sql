-- The record of a request_id within the retention ($2 seconds).
SELECT method, fingerprint, response FROM request_ids
WHERE request_id = $1 AND created_at >= now() - make_interval(secs => $2)
