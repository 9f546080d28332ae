-- Rows the broker did not acknowledge: due again after a backoff that doubles with each
-- attempt, from 200 ms up to 5 s, so a broker that comes back is used within seconds. Only rows
-- this relay ($2) still holds.
UPDATE outbox
SET available_at = now() + least(interval '200 milliseconds' * (2 ^ least(attempts - 1, 10)),
                                 interval '5 seconds')
WHERE id = ANY($1) AND leased_by = $2
