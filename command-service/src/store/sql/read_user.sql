-- The user and the database's clock now, which becomes the change's updated_at, so every
-- timestamp of a user comes from one clock.
SELECT id, first_name, last_name, nickname, email, country, created_at, updated_at, version,
       statement_timestamp()
FROM users
WHERE id = $1
