-- The write model: users and the transactional outbox of their events.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    first_name    text        NOT NULL,
    last_name     text        NOT NULL,
    nickname      text        NOT NULL DEFAULT '',
    email         text        NOT NULL,
    country       text        NOT NULL DEFAULT '',
    -- argon2id PHC string; never leaves this database.
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       bigint      NOT NULL CHECK (version >= 1)
);

-- Email is unique case-insensitively.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- One row per change, written in the transaction that made the change and deleted once the
-- relay has published it.
CREATE TABLE outbox (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          uuid        NOT NULL,
    event_type        text        NOT NULL,
    aggregate_id      uuid        NOT NULL,
    aggregate_version bigint      NOT NULL,
    payload           bytea       NOT NULL,
    traceparent       text,
    occurred_at       timestamptz NOT NULL
);
