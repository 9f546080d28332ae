-- Rows of an event type this release does not know: kept, and looked at again in a minute
-- by every relay, so a release that knows the type publishes them.
UPDATE outbox
SET available_at = now() + interval '1 minute',
    attempts = 0,
    parked_at = COALESCE(parked_at, now())
WHERE id = ANY($1) AND leased_by = $2
-- now() is the statement's transaction time: equal only for rows parked by this statement.
RETURNING id, parked_at = now() AS newly_parked
