-- The change and its outbox event in one statement, so they commit together with no
-- transaction to hold open across round trips. The row changes only if it is still at the
-- version the change was computed from ($9); otherwise nothing happens and the caller reads
-- it again. With $14, relays listening on users_outbox are woken at commit.
WITH updated AS (
    UPDATE users
    SET first_name = $2,
        last_name = $3,
        nickname = $4,
        email = $5,
        country = $6,
        password_hash = COALESCE($7, password_hash),
        updated_at = $8,
        version = version + 1
    WHERE id = $1 AND version = $9
    RETURNING id, version
),
queued AS (
    INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, traceparent, occurred_at, auth_id, auth_type)
    SELECT $10, $11, id, version, $12, $13, $8, $15, $16 FROM updated
    RETURNING id
)
SELECT CASE WHEN $14 THEN pg_notify('users_outbox', '') END FROM queued
