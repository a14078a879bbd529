-- glimpse schema, step 8: backfill jobs, the models workers run, and re-driven failures.

-- The model each worker role runs, as the worker says at start. Repair and backfill
-- look for work of these models: the ones that can actually produce it. (Vector
-- models have the same stamp on vector_models.)
CREATE TABLE stage_models (
    role          text NOT NULL CHECK (role IN ('captioner', 'transcriber')),
    model         text NOT NULL,
    revision      text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, model)
);
ALTER TABLE vector_models ADD COLUMN registered_at timestamptz NOT NULL DEFAULT now();

-- A backfill: work of one stage found in Postgres (or the bucket, for ingest) and
-- enqueued on the stage's backfill topic in order. ``cursor`` is the last media id
-- (the last key, for ingest) enqueued: a restarted job continues after it and never
-- enqueues again what it already did. A job killed outright stays 'running' with a
-- stale heartbeat; one stopped by a signal says 'interrupted'. Both resume.
CREATE TABLE backfill_jobs (
    id            bigserial PRIMARY KEY,
    stage         text NOT NULL CHECK (stage IN ('ingest', 'caption', 'embed', 'transcribe')),
    model         text,                  -- the model the work is for (NULL for ingest)
    mode          text NOT NULL CHECK (mode IN ('missing', 'all')),
    prefix        text NOT NULL DEFAULT '',
    since         timestamptz,           -- only media created since
    older_than_s  double precision NOT NULL DEFAULT 0,  -- only media untouched this long
    rate          double precision,      -- items per second; NULL: as fast as it goes
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'interrupted', 'done', 'failed')),
    cursor        text,
    total         bigint,                -- work found when the job began; NULL: counting
    enqueued      bigint NOT NULL DEFAULT 0,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX backfill_jobs_by_age ON backfill_jobs (created_at DESC);

-- When `glimpse dlq retry` sent a failure's item again; a new failure clears it.
ALTER TABLE media_failures ADD COLUMN retried_at timestamptz;
