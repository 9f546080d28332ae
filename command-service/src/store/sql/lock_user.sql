SELECT id, first_name, last_name, nickname, email, country, created_at, updated_at, version
FROM users
WHERE id = $1
FOR UPDATE
