-- The user's row, live or tombstone.
SELECT {columns} FROM {table} WHERE id = $1
