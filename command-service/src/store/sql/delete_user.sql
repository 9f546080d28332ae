DELETE FROM users
WHERE id = $1
RETURNING id, first_name, last_name, nickname, email, country, created_at, now(), version + 1
