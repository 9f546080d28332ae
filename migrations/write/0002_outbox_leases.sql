-- The relay leases the rows it publishes instead of holding them locked in a transaction, so
-- a record the broker is slow to acknowledge (a sick partition) holds back nobody else's.
--
-- available_at: when the row may be claimed next. A claim moves it forward by the lease
-- (renewed while the record is in flight, so a crashed relay's rows return within one lease);
-- a failed publish moves it forward by a backoff.
-- parked_at: set when a relay met an event type it does not know (a newer release's event
-- during a rolling deploy); the row is kept and looked at again later by every relay, and a
-- release that knows the type publishes it.
ALTER TABLE outbox
    ADD COLUMN available_at timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN attempts     integer     NOT NULL DEFAULT 0,
    ADD COLUMN parked_at    timestamptz;

-- A user's later rows wait while an earlier one is leased or backing off (per-key order).
CREATE INDEX outbox_by_aggregate ON outbox (aggregate_id, id);
-- Counting parked rows without reading the table.
CREATE INDEX outbox_parked ON outbox (id) WHERE parked_at IS NOT NULL;
