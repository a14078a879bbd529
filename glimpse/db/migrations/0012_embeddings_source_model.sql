-- glimpse schema: which model wrote the text a text vector was made from (a captioner
-- or a transcriber). A text vector is one per (item, text model); with two captioners
-- registered (one filled side by side, then activated), the embed stage must know
-- whose caption a vector says, to keep it the active captioner's and to make it again
-- after a switch (services/embed/handler.py, glimpse/db/backlog.py). NULL: visual
-- vectors, and text vectors whose text is gone (taken as up to date).

ALTER TABLE embeddings ADD COLUMN source_model text;

-- Until now a text vector was made from whichever text of its item arrived last: record
-- the newest caption's or transcript's model as what it was made from.
UPDATE embeddings e SET source_model = (
    SELECT c.model FROM captions c WHERE c.media_id = e.media_id
    ORDER BY c.created_at DESC LIMIT 1)
WHERE e.kind = 'text' AND e.source = 'caption';
UPDATE embeddings e SET source_model = (
    SELECT t.model FROM transcripts t WHERE t.media_id = e.media_id
    ORDER BY t.created_at DESC LIMIT 1)
WHERE e.kind = 'text' AND e.source = 'transcript';
