-- glimpse schema, step 1: the media table every stage hangs off.
-- Later stages add their own tables keyed by (media_id, model), e.g. captions,
-- transcripts and embeddings (one table for all models, partial HNSW per model).
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE media (
    -- uuid5 of bucket/key: the API can name an upload's id before ingest sees it,
    -- and re-delivered events map onto the same row.
    id            uuid PRIMARY KEY,
    bucket        text NOT NULL,
    key           text NOT NULL,
    etag          text,
    status        text NOT NULL
                  CHECK (status IN ('accepted', 'rejected', 'duplicate', 'deleted', 'failed')),
    reason        text,          -- machine-readable (RejectReason or 'processing_error')
    reason_detail text,          -- the same in words, for people
    kind          text CHECK (kind IN ('image', 'audio')),
    mime          text,
    size_bytes    bigint,
    sha256        text,
    width         integer,
    height        integer,
    duration_s    double precision,
    captured_at   timestamptz,
    metadata      jsonb NOT NULL DEFAULT '{}',
    thumbnail_key text,
    duplicate_of  uuid REFERENCES media (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    UNIQUE (bucket, key)
);

-- At most one accepted original per content: duplicates point at it.
CREATE UNIQUE INDEX media_original_by_sha256 ON media (sha256) WHERE status = 'accepted';
CREATE INDEX media_by_status ON media (status, created_at);
CREATE INDEX media_by_key ON media (bucket, key text_pattern_ops);

-- Processing failures that reached the dead-letter queue, one row per (media, stage).
CREATE TABLE media_failures (
    media_id   uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    stage      text NOT NULL,
    error_type text NOT NULL,
    message    text NOT NULL,
    attempts   integer NOT NULL,
    origin     text NOT NULL,    -- topic/partition@offset
    failed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, stage)
);
