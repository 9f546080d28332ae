-- The live user holding the address, compared as the write side keeps addresses unique.
-- While the read model catches up, a deleted user's address may already be another's: the
-- latest change wins. The holders are found first (MATERIALIZED), so that the planner
-- cannot walk the time index looking for the address instead.
WITH holders AS MATERIALIZED (
    SELECT {columns} FROM {table}
    WHERE NOT deleted AND lower(email) COLLATE "C" = lower($1)
)
SELECT * FROM holders ORDER BY updated_at DESC LIMIT 1
