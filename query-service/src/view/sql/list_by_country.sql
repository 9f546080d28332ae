-- A page of live users of the countries $2 in id order: one ordered index scan per country,
-- each stopped at the page size $1, then merged. `country = ANY(...) ORDER BY id` would read
-- and sort every matching row. After the id of the page token when there is one (the last
-- parameter).
SELECT v.* FROM unnest($2::text[]) AS c(code) CROSS JOIN LATERAL (
    SELECT {columns} FROM {table}
    WHERE NOT deleted AND country = c.code{after}
    ORDER BY id LIMIT $1
) v
ORDER BY v.id LIMIT $1
