INSERT INTO users (id, first_name, last_name, nickname, email, country, password_hash, created_at, updated_at, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now(), 1)
RETURNING id, first_name, last_name, nickname, email, country, created_at, updated_at, version
