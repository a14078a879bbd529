-- glimpse schema, step 13: when each stage's workers last started consuming.
--
-- Stage repair gives an item a stage failed one more chance once that stage's workers
-- have started again since the failure (a deploy, a limit or model change: the cause
-- may be gone). Model stages have their start in stage_models; ingest has no model,
-- and its failures (and transcribe's) mark the whole media row failed, which only a
-- fresh ingest clears. Written by the worker runtime (glimpse.runtime.run_service).
CREATE TABLE worker_starts (
    stage      text PRIMARY KEY,   -- the service's name, as media_failures.stage says it
    started_at timestamptz NOT NULL DEFAULT now()
);
