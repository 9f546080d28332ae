-- Who made each change, sent with its event as CloudEvents' auth context (ce_authid: the
-- token's subject; ce_authtype: user, service_account or unauthenticated).
ALTER TABLE outbox
    ADD COLUMN auth_id   text,
    ADD COLUMN auth_type text;
