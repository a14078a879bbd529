-- Reconcile walks live rows in S3's listing order (UTF-8 byte order = COLLATE "C"),
-- one keyset page at a time; this index serves each page without sorting the table.
CREATE INDEX media_live_by_key_bytes ON media (bucket, key COLLATE "C")
    WHERE status <> 'deleted';
