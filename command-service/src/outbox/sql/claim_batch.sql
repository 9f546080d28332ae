-- Deletes the rows the broker acknowledged ($3), then claims up to $1 due rows, oldest first,
-- and leases them for $2 seconds to relay $4. A row waits while an earlier row of its user is leased or
-- backing off (rows deleted here no longer count), so a failing row holds back that user
-- alone, and the relay sends a user's claimed rows one after the other. A parked row holds
-- back no one (consumers order by version). Rows another relay is claiming right now are
-- skipped.
WITH published AS (
    DELETE FROM outbox WHERE id = ANY($3)
),
due AS (
    SELECT o.id
    FROM outbox o
    WHERE o.available_at <= now()
      AND o.id <> ALL($3)
      AND NOT EXISTS (
          SELECT 1
          FROM outbox earlier
          WHERE earlier.aggregate_id = o.aggregate_id
            AND earlier.id < o.id
            AND earlier.available_at > now()
            AND earlier.parked_at IS NULL
            AND earlier.id <> ALL($3)
      )
    ORDER BY o.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox
SET available_at = now() + make_interval(secs => $2),
    attempts = outbox.attempts + 1,
    leased_by = $4
FROM due
WHERE outbox.id = due.id
RETURNING outbox.id, outbox.event_id, outbox.event_type, outbox.aggregate_id,
          outbox.aggregate_version, outbox.payload, outbox.traceparent, outbox.occurred_at,
          outbox.auth_id, outbox.auth_type
