-- Runs once, when the Postgres data volume is first initialised (docker-entrypoint-initdb.d).
-- The extension needs superuser rights; the service's own migrations then only
-- `CREATE EXTENSION IF NOT EXISTS vector`, which is a no-op here.
CREATE EXTENSION IF NOT EXISTS vector;
