-- Keeps the records still in flight leased to this relay ($3), unless another relay claimed
-- them after the lease ran out.
UPDATE outbox SET available_at = now() + make_interval(secs => $2) WHERE id = ANY($1) AND leased_by = $3
