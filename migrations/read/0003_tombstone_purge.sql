-- Tombstones are purged once older than TOMBSTONE_RETENTION. The horizon is the newest
-- updated_at of any tombstone purged so far: an event at or before it creates no row (it
-- may still update one), so a late event for a purged user cannot bring the user back.
CREATE TABLE read_model_purge (
    singleton boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    horizon   timestamptz NOT NULL
);
INSERT INTO read_model_purge (horizon) VALUES ('-infinity');

CREATE INDEX user_views_tombstones ON user_views (updated_at) WHERE deleted;
