INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, traceparent, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
