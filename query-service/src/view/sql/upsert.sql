-- Writes each change of the batch unless the table holds that user at the same or a newer
-- version; returns (id, true) for each row written and, in the live table, (id, false) for
-- each change refused because the user's tombstone was purged.
-- The purge guard and the refusals are filled in for the live table only (see view::apply).
WITH e AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::timestamptz[], $8::timestamptz[], $9::int8[],
                         $10::bool[]) AS e({columns})
),
written AS (
    INSERT INTO {table} AS v ({columns}) SELECT e.* FROM e{purged_guard}
    ON CONFLICT (id) DO UPDATE SET
        first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        nickname = EXCLUDED.nickname, email = EXCLUDED.email, country = EXCLUDED.country,
        created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
        version = EXCLUDED.version, deleted = EXCLUDED.deleted
    WHERE v.version < EXCLUDED.version
    RETURNING v.id
)
SELECT id, true FROM written{purged_refused}
