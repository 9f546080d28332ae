-- Rows this relay ($2) will not publish after all (it is stopping): due now, for any relay.
UPDATE outbox SET available_at = now(), leased_by = NULL WHERE id = ANY($1) AND leased_by = $2
