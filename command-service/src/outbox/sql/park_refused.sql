-- Rows whose record the broker refused for good on each of $3 attempts (too large, against a
-- topic's policy): set aside, so that they hold back no one; looked at again in an hour, in
-- case the topic's limits changed. Only rows this relay ($2) still holds.
UPDATE outbox
SET available_at = now() + interval '1 hour',
    parked_at = COALESCE(parked_at, now())
WHERE id = ANY($1) AND leased_by = $2 AND attempts >= $3
RETURNING id
