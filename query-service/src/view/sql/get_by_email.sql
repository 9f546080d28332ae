-- The live user holding the address, compared as the write side keeps addresses unique.
-- While the read model catches up, a deleted user's address may already be another's: the
-- latest change wins.
SELECT {columns} FROM {table}
WHERE NOT deleted AND lower(email) COLLATE "C" = lower($1)
ORDER BY updated_at DESC LIMIT 1
