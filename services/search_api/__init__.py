"""search_api: the HTTP API (FastAPI): health, metrics, media status; search comes next."""
