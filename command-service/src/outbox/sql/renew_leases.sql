-- Keeps the records still in flight leased to this relay.
UPDATE outbox SET available_at = now() + make_interval(secs => $2) WHERE id = ANY($1)
