-- glimpse schema, step 2: captions and vectors, one row per (media, model).

CREATE TABLE captions (
    media_id       uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    model          text NOT NULL,      -- InferenceModel.model_id
    model_revision text NOT NULL,
    text           text NOT NULL,
    labels         jsonb NOT NULL DEFAULT '[]',   -- [[label, probability], ...] best first
    top_score      real,               -- probability of the best label (NULL for BLIP):
                                       -- tells confident captions from guesses
    tsv            tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, model)
);
CREATE INDEX captions_fulltext ON captions USING gin (tsv);

-- Vectors of every model in one table. The column has no fixed dimension; each
-- (model, kind) gets a partial HNSW index on a cast to its dimension, created when
-- the model is registered (glimpse/db/vectors.py), so search never mixes models.
CREATE TABLE embeddings (
    media_id       uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    model          text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('text', 'visual')),
    source         text NOT NULL,      -- caption | transcript | image
    dim            integer NOT NULL,
    embedding      halfvec NOT NULL,   -- half precision: half the memory, same recall (bench/)
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, model, kind)
);

-- Which model serves each kind of vector. Switching models = backfill side by side,
-- then flip `active` in one transaction.
CREATE TABLE vector_models (
    model      text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('text', 'visual')),
    dim        integer NOT NULL,
    index_name text NOT NULL,
    active     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, kind)
);
CREATE UNIQUE INDEX vector_models_one_active ON vector_models (kind) WHERE active;
