-- The rows of the given users, live or tombstone, in no particular order.
SELECT {columns} FROM {table} WHERE id = ANY($1)
