-- The users whose tombstones were purged. An event for one of them, however late and however
-- old, creates no row: a read model catching up on history older than the tombstone retention
-- keeps every user it has not projected yet, which a time horizon could not promise.
-- read_model_purge stays as the row purges and projector writes lock; its horizon is no longer
-- read.
CREATE TABLE purged_users (
    id uuid PRIMARY KEY
);
