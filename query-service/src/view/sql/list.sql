-- A page of at most $1 live users in id order, after the id of the page token when there
-- is one (the last parameter).
SELECT {columns} FROM {table} WHERE NOT deleted{after} ORDER BY id LIMIT $1
