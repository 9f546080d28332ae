-- A page of at most $1 live users in id order, after the filters (the time of the latest
-- change, the id of the page token) when the request has them.
SELECT {columns} FROM {table} WHERE NOT deleted{filters} ORDER BY id LIMIT $1
