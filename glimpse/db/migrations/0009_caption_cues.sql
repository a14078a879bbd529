-- glimpse schema: cues the labels miss, read by the caption stage from the same image
-- (glimpse/models/cues.py): words written in it (OCR) and its dominant colour names.
-- They live on the caption row so that one full-text document holds all that is said
-- about an image: "red car" needs "car" from the caption and "red" from the colours.

ALTER TABLE captions
    ADD COLUMN ocr_text     text NOT NULL DEFAULT '',    -- kept words, reading order
    ADD COLUMN colours      jsonb NOT NULL DEFAULT '[]', -- [[name, share], ...] largest first
    ADD COLUMN cues_version text;                        -- CueReader.version; NULL: none read

-- The full-text document: caption, then the words read, then the colour names.
DROP INDEX captions_fulltext;
ALTER TABLE captions DROP COLUMN tsv;
ALTER TABLE captions ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    to_tsvector('english', text)
    || to_tsvector('english', ocr_text)
    || jsonb_to_tsvector('english', colours, '["string"]')
) STORED;
CREATE INDEX captions_fulltext ON captions USING gin (tsv);
