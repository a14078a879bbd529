"""Ingest: validates uploads (libmagic + full decode), dedupes, thumbnails, records media rows."""
