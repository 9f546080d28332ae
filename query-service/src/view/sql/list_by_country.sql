-- A page of live users of the given countries in id order: one ordered index scan per
-- country, each stopped at the page size $1, then merged. `country = ANY(...) ORDER BY id`
-- would read and sort every matching row.
SELECT v.* FROM unnest({countries}::text[]) AS c(code) CROSS JOIN LATERAL (
    SELECT {columns} FROM {table}
    WHERE NOT deleted AND country = c.code{filters}
    ORDER BY id LIMIT $1
) v
ORDER BY v.id LIMIT $1
