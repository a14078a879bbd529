-- glimpse schema, step 5: deliveries that kill their worker, and failure reasons.

-- A message a worker has started on and not finished. The row is written (and
-- committed) before the handler runs and deleted when the handler returns, so a row
-- that is still there when the message comes again means the process died on it
-- (out of memory, SIGKILL, a segfault in a decoder). After worker.max_crashes such
-- deaths the message goes to the DLQ (reason crashed_worker) instead of killing
-- workers forever. Rows at or below a committed offset are deleted at each commit.
CREATE TABLE delivery_attempts (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    partition       integer NOT NULL,
    "offset"        bigint NOT NULL,
    attempts        integer NOT NULL DEFAULT 1,
    last_started_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition, "offset")
);

-- The machine-readable reason a stage dead-lettered an item (e.g. crashed_worker,
-- thumbnail_missing, processing_error), beside the error's type and message.
ALTER TABLE media_failures ADD COLUMN reason text NOT NULL DEFAULT 'processing_error';
