-- glimpse schema, step 10: one model registry for every role.
--
-- stage_models becomes the registry: per role (captioner, transcriber, text, visual,
-- and joint for image-text models) which models exist, the one search serves
-- (`active`, exactly one per role, the first registered), when a worker last started
-- with it (`registered_at`, what backfill and repair look for), and the load spec a
-- process needs to load it from its id (`spec`: the glimpse.config.ModelSettings fields
-- that define it). vector_models keeps only what vectors add: dimension and index.

ALTER TABLE stage_models DROP CONSTRAINT stage_models_role_check;
ALTER TABLE stage_models ADD CONSTRAINT stage_models_role_check
    CHECK (role IN ('captioner', 'transcriber', 'text', 'visual', 'joint'));
ALTER TABLE stage_models ADD COLUMN spec jsonb NOT NULL DEFAULT '{}';
ALTER TABLE stage_models ADD COLUMN active boolean NOT NULL DEFAULT false;
ALTER TABLE stage_models ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
UPDATE stage_models SET created_at = registered_at;

-- vector models join the registry under their kind, active as they were
INSERT INTO stage_models (role, model, revision, active, created_at, registered_at)
SELECT kind, model, '', active, created_at, registered_at FROM vector_models
ON CONFLICT (role, model) DO NOTHING;

-- captioners and transcribers had no active one: the one the workers run now
UPDATE stage_models s SET active = true
WHERE s.role IN ('captioner', 'transcriber')
  AND s.model = (SELECT l.model FROM stage_models l WHERE l.role = s.role
                 ORDER BY l.registered_at DESC, l.model LIMIT 1);

CREATE UNIQUE INDEX stage_models_one_active ON stage_models (role) WHERE active;

ALTER TABLE vector_models DROP COLUMN active;
ALTER TABLE vector_models DROP COLUMN registered_at;
ALTER TABLE vector_models ADD CONSTRAINT vector_models_registered
    FOREIGN KEY (kind, model) REFERENCES stage_models (role, model) ON DELETE CASCADE;
