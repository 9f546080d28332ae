-- The read model: one row per user ever seen, kept at the newest version projected.
-- A deleted user stays as a tombstone (deleted = true) so that a late event of an older
-- version cannot bring it back.

CREATE TABLE user_views (
    id         uuid        PRIMARY KEY,
    first_name text        NOT NULL,
    last_name  text        NOT NULL,
    nickname   text        NOT NULL,
    email      text        NOT NULL,
    country    text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version    bigint      NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false
);

-- ListUsers walks live users in id order (UUID v7: creation order), with or without a
-- country filter, by keyset.
CREATE INDEX user_views_live_by_id ON user_views (id) WHERE NOT deleted;
CREATE INDEX user_views_live_by_country ON user_views (country, id) WHERE NOT deleted;
