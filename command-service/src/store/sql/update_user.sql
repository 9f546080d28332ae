UPDATE users
SET first_name = $2,
    last_name = $3,
    nickname = $4,
    email = $5,
    country = $6,
    password_hash = COALESCE($7, password_hash),
    updated_at = now(),
    version = version + 1
WHERE id = $1
RETURNING id, first_name, last_name, nickname, email, country, created_at, updated_at, version
