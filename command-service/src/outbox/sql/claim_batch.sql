-- Claims up to $1 due rows, oldest first, and leases them for $2 seconds. Only a user's
-- oldest row can be claimed: its later rows wait until it is published (deleted), so one
-- user's events leave in order and a failing one holds back that user alone. A parked row
-- holds back no one (consumers order by version). Rows another relay is claiming right now
-- are skipped.
WITH due AS (
    SELECT o.id
    FROM outbox o
    WHERE o.available_at <= now()
      AND NOT EXISTS (
          SELECT 1
          FROM outbox earlier
          WHERE earlier.aggregate_id = o.aggregate_id
            AND earlier.id < o.id
            AND earlier.parked_at IS NULL
      )
    ORDER BY o.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox
SET available_at = now() + make_interval(secs => $2),
    attempts = outbox.attempts + 1
FROM due
WHERE outbox.id = due.id
RETURNING outbox.id, outbox.event_id, outbox.event_type, outbox.aggregate_id,
          outbox.aggregate_version, outbox.payload, outbox.traceparent, outbox.occurred_at
