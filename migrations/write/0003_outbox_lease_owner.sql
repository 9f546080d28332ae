-- Which relay holds a row's lease. A relay renews, frees and reschedules only rows it still
-- holds: one whose lease ran out (a relay paused by a long GC, a hung host) and that another
-- relay has claimed since is no longer its to change.
ALTER TABLE outbox ADD COLUMN leased_by uuid;
