-- A page of live users whose first name, last name, nickname or address starts with the
-- query, case-insensitively: one range of each column's index (bytes from the lowered query
-- up to it followed by the last code point), the ids gathered, then the page in id order.
SELECT {columns} FROM {table} WHERE id IN (
    SELECT id FROM {table} WHERE NOT deleted
        AND lower(first_name) COLLATE "C" >= lower({query})
        AND lower(first_name) COLLATE "C" < lower({query}) || chr(1114111)
    UNION ALL
    SELECT id FROM {table} WHERE NOT deleted
        AND lower(last_name) COLLATE "C" >= lower({query})
        AND lower(last_name) COLLATE "C" < lower({query}) || chr(1114111)
    UNION ALL
    SELECT id FROM {table} WHERE NOT deleted
        AND lower(nickname) COLLATE "C" >= lower({query})
        AND lower(nickname) COLLATE "C" < lower({query}) || chr(1114111)
    UNION ALL
    SELECT id FROM {table} WHERE NOT deleted
        AND lower(email) COLLATE "C" >= lower({query})
        AND lower(email) COLLATE "C" < lower({query}) || chr(1114111)
) AND NOT deleted{filters}
ORDER BY id LIMIT $1
