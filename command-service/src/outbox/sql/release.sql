-- Rows this relay will not publish after all (it is stopping): due now, for any relay.
UPDATE outbox SET available_at = now() WHERE id = ANY($1)
