-- Requests a client marked with a request_id (AIP-155), each with the answer it got, so a
-- retry is answered the same without changing anything. Written in the transaction of the
-- change it answers; purged once older than REQUEST_ID_RETENTION.
CREATE TABLE request_ids (
    request_id  uuid        PRIMARY KEY,
    -- The RPC and a SHA-256 of its request (request_id and password left out): a reused
    -- request_id with another request is refused.
    method      text        NOT NULL,
    fingerprint bytea       NOT NULL,
    -- The encoded response message.
    response    bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX request_ids_by_age ON request_ids (created_at);
