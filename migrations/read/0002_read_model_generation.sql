-- Bumped by every replay swap, so replicas clear their caches for a real swap only (a
-- LISTEN reconnect alone must not drop cache entries that are ahead of the view).
CREATE TABLE read_model_generation (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint  NOT NULL
);
INSERT INTO read_model_generation (generation) VALUES (0);
