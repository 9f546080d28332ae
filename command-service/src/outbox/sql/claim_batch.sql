-- Rows another relay holds are skipped, so several relays share the backlog.
SELECT id, event_id, event_type, aggregate_id, aggregate_version, payload, traceparent, occurred_at
FROM outbox
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
