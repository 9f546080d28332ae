-- The user and the database's clock now, which becomes the change's updated_at, so every
-- timestamp of a user comes from one clock; and never before the version it follows, so a
-- user's timestamps do not go backwards when that clock does.
SELECT id, first_name, last_name, nickname, email, country, created_at, updated_at, version,
       GREATEST(statement_timestamp(), updated_at + interval '1 microsecond')
FROM users
WHERE id = $1
