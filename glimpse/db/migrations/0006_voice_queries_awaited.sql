-- Until when someone is known to wait for a voice query's answer: set by the API when it
-- records the query (its own wait plus a grace), pushed on by every poll of the query.
-- The transcribe worker drops queries past it: after an outage the backlog of answers
-- nobody reads any more is not transcribed before the queries people are waiting for.
ALTER TABLE voice_queries
    ADD COLUMN IF NOT EXISTS awaited_until timestamptz NOT NULL DEFAULT now() + interval '1 minute';
