-- glimpse schema, step 11: custom label sets (issue 12). A label set is a small head
-- trained on the stored visual vectors (glimpse/labels/); its versions are artifacts in
-- S3 with a row each here. An active set tags every image: the caption stage tags new
-- ones from the vector in hand, a backfill job (stage 'labels') tags stored ones.

CREATE TABLE label_sets (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    active_version integer,           -- the version that tags and is searched; NULL: off
    unsure_below   real NOT NULL,     -- a tag less confident than this is "unsure"
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE label_set_versions (
    name            text NOT NULL REFERENCES label_sets (name) ON DELETE CASCADE,
    version         integer NOT NULL,
    visual_model    text NOT NULL,    -- the visual vectors it was trained on
    classes         jsonb NOT NULL,   -- ["label", ...] in the head's order
    metrics         jsonb NOT NULL,   -- held-out accuracy, per class, confusion matrix
    examples        integer NOT NULL,
    artifact_key    text NOT NULL,    -- the head in the bucket (glimpse/labels/artifact.py)
    artifact_sha256 text NOT NULL,    -- checked when loaded
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- One tag per (item, set): the best label of the version that wrote it. A new version's
-- tags replace the old ones as tagging reaches them; search reads whatever is there for
-- active sets, so activating a version never empties the label filter.
CREATE TABLE media_labels (
    media_id     uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    label_set    text NOT NULL REFERENCES label_sets (name) ON DELETE CASCADE,
    version      integer NOT NULL,
    label        text NOT NULL,
    confidence   real NOT NULL,       -- the head's probability of ``label`` (1 if corrected)
    corrected    boolean NOT NULL DEFAULT false,  -- set by a person: tagging keeps it
    alternatives jsonb NOT NULL DEFAULT '[]',     -- [[label, p], ...] the runners-up
    tsv          tsvector GENERATED ALWAYS AS (to_tsvector('english', label)) STORED,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, label_set)
);
-- label= and min_confidence= filters start from the label when it is selective
CREATE INDEX media_labels_by_label ON media_labels (label, confidence DESC) INCLUDE (label_set);
CREATE INDEX media_labels_fulltext ON media_labels USING gin (tsv);
-- review lists a set's least confident tags first
CREATE INDEX media_labels_by_confidence ON media_labels (label_set, confidence)
    WHERE NOT corrected;

-- Corrections made in review: they fix the tag at once and are training examples for
-- the set's next version (their stored visual vectors).
CREATE TABLE label_corrections (
    label_set  text NOT NULL REFERENCES label_sets (name) ON DELETE CASCADE,
    media_id   uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    label      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (label_set, media_id)
);

-- tagging stored items is a backfill job like the others
ALTER TABLE backfill_jobs DROP CONSTRAINT backfill_jobs_stage_check;
ALTER TABLE backfill_jobs ADD CONSTRAINT backfill_jobs_stage_check
    CHECK (stage IN ('ingest', 'caption', 'embed', 'transcribe', 'labels'));
