-- The answer of the request that took the request_id, once known (same transaction).
UPDATE request_ids SET response = $2 WHERE request_id = $1
