-- The deletion is timed when it happens, and never before the version it follows: `now()`
-- (the transaction's start) can be older than a change that committed while this
-- transaction waited for the row's lock, and a tombstone must not look older than the user.
DELETE FROM users
WHERE id = $1
RETURNING id, first_name, last_name, nickname, email, country, created_at,
          GREATEST(clock_timestamp(), updated_at + interval '1 microsecond'), version + 1
