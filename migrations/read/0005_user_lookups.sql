-- migrate: no transaction
-- GetUserByEmail finds a live user by its address, case-insensitively as the write side
-- keeps addresses unique; ListUsers' query filter by a case-insensitive prefix of a name,
-- the nickname or the address, and its updated_after filter by the time of the latest change.
-- The text indexes compare bytes (COLLATE "C"), so a prefix is one range of each index
-- whatever the database's collation, and the statements compare the same way.
-- Built concurrently, so the projector and the readers go on meanwhile; each build is
-- preceded by dropping what a build that failed half way left behind.

DROP INDEX CONCURRENTLY IF EXISTS user_views_live_by_email;
CREATE INDEX CONCURRENTLY user_views_live_by_email ON user_views ((lower(email) COLLATE "C")) WHERE NOT deleted;
DROP INDEX CONCURRENTLY IF EXISTS user_views_live_by_first_name;
CREATE INDEX CONCURRENTLY user_views_live_by_first_name ON user_views ((lower(first_name) COLLATE "C")) WHERE NOT deleted;
DROP INDEX CONCURRENTLY IF EXISTS user_views_live_by_last_name;
CREATE INDEX CONCURRENTLY user_views_live_by_last_name ON user_views ((lower(last_name) COLLATE "C")) WHERE NOT deleted;
DROP INDEX CONCURRENTLY IF EXISTS user_views_live_by_nickname;
CREATE INDEX CONCURRENTLY user_views_live_by_nickname ON user_views ((lower(nickname) COLLATE "C")) WHERE NOT deleted;
DROP INDEX CONCURRENTLY IF EXISTS user_views_live_by_updated_at;
CREATE INDEX CONCURRENTLY user_views_live_by_updated_at ON user_views (updated_at) WHERE NOT deleted;
