-- Takes the request_id for this request, unless a request within the retention ($5 seconds)
-- holds it; an expired record is taken over. A concurrent request holding it uncommitted is
-- waited for. Returns a row when taken.
INSERT INTO request_ids (request_id, method, fingerprint, response)
VALUES ($1, $2, $3, $4)
ON CONFLICT (request_id) DO UPDATE
    SET method = EXCLUDED.method, fingerprint = EXCLUDED.fingerprint,
        response = EXCLUDED.response, created_at = now()
    WHERE request_ids.created_at < now() - make_interval(secs => $5)
RETURNING true
