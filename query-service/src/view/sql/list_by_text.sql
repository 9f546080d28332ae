-- A page of live users whose first name, last name, nickname or address starts with the
-- query, case-insensitively: one range of each column's index (bytes from the lowered query
-- up to it followed by the last code point), every other condition checked on the way, then
-- the page's ids in order and their rows. Gathered first (MATERIALIZED, and the page cut
-- from them) so that the planner cannot walk the whole table in id order instead.
WITH matches AS MATERIALIZED (
    SELECT id FROM {table} WHERE NOT deleted{filters}
        AND lower(first_name) COLLATE "C" >= lower({query})
        AND lower(first_name) COLLATE "C" < lower({query}) || chr(1114111)
    UNION ALL
    SELECT id FROM {table} WHERE NOT deleted{filters}
        AND lower(last_name) COLLATE "C" >= lower({query})
        AND lower(last_name) COLLATE "C" < lower({query}) || chr(1114111)
    UNION ALL
    SELECT id FROM {table} WHERE NOT deleted{filters}
        AND lower(nickname) COLLATE "C" >= lower({query})
        AND lower(nickname) COLLATE "C" < lower({query}) || chr(1114111)
    UNION ALL
    SELECT id FROM {table} WHERE NOT deleted{filters}
        AND lower(email) COLLATE "C" >= lower({query})
        AND lower(email) COLLATE "C" < lower({query}) || chr(1114111)
)
SELECT v.* FROM (SELECT DISTINCT id FROM matches ORDER BY id LIMIT $1) AS m
CROSS JOIN LATERAL (SELECT {columns} FROM {table} WHERE id = m.id) AS v
ORDER BY v.id
