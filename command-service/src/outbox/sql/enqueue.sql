INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, traceparent, occurred_at, auth_id, auth_type)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
