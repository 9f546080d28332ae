-- A page of at most $1 live users in id order, after the id $2 when a page token gave one.
SELECT {columns} FROM {table} WHERE NOT deleted{after} ORDER BY id LIMIT $1
