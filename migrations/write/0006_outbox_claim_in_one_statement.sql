-- The relay's claim as one statement. The claim must be planned without sequential scans
-- (see command-service/src/outbox/table.rs), and a function's own SET holds for its
-- statements alone: a claim is then one round trip, not a transaction of four (BEGIN,
-- SET LOCAL, the claim, COMMIT). PL/pgSQL, since it keeps the statement's plan for the
-- session where an SQL function plans it again on every call.
--
-- Deletes the rows the broker acknowledged ($3), then claims up to $1 due rows, oldest
-- first, and leases them for $2 seconds to relay $4. A row waits while an earlier row of
-- its user is leased or backing off (rows deleted here no longer count), so a failing row
-- holds back that user alone, and the relay sends a user's claimed rows one after the
-- other. A parked row holds back no one (consumers order by version). Rows another relay
-- is claiming right now are skipped.
CREATE FUNCTION outbox_claim(batch bigint, lease_seconds double precision, published bigint[], owner uuid)
RETURNS TABLE (id bigint, event_id uuid, event_type text, aggregate_id uuid, aggregate_version bigint,
               payload bytea, traceparent text, occurred_at timestamptz, auth_id text, auth_type text)
LANGUAGE plpgsql
VOLATILE
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
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
    ),
    claimed AS (
        UPDATE outbox
        SET available_at = now() + make_interval(secs => $2),
            attempts = outbox.attempts + 1,
            leased_by = $4
        FROM due
        WHERE outbox.id = due.id
        RETURNING outbox.id, outbox.event_id, outbox.event_type, outbox.aggregate_id,
                  outbox.aggregate_version, outbox.payload, outbox.traceparent, outbox.occurred_at,
                  outbox.auth_id, outbox.auth_type
    )
    SELECT * FROM claimed;
END
$$;

-- Every event leaves two dead rows in the outbox (its lease and its deletion), and the claim
-- walks the index from its left edge, dead entries included: vacuum once a few thousand have
-- died rather than at a fifth of a table that is usually nearly empty.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
