-- glimpse schema, step 4: transcripts of uploaded audio, and voice search queries.

CREATE TABLE transcripts (
    media_id             uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    model                text NOT NULL,      -- Transcriber.model_id
    model_revision       text NOT NULL,
    language             text NOT NULL,      -- ISO 639-1, detected or configured
    language_probability real,
    duration_s           double precision NOT NULL,
    text                 text NOT NULL,
    segments             jsonb NOT NULL DEFAULT '[]',  -- [[start_s, end_s, text], ...]
    tsv                  tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, model)
);
CREATE INDEX transcripts_fulltext ON transcripts USING gin (tsv);

-- A spoken search: the clip lies under queries/ in the bucket until the retention
-- period ends; the transcribe service fills in the transcript (or the reason it
-- could not) and NOTIFYs glimpse_voice_queries with the id, for the waiting API.
CREATE TABLE voice_queries (
    id            uuid PRIMARY KEY,
    bucket        text NOT NULL,
    clip_key      text NOT NULL,
    mime          text NOT NULL,
    size_bytes    bigint NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'done', 'failed')),
    transcript    text,
    language      text,
    duration_s    double precision,
    reason        text,          -- machine-readable, when failed
    reason_detail text,          -- the same in words
    model         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX voice_queries_by_age ON voice_queries (created_at);
