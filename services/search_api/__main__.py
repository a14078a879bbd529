"""``python -m services.search_api``: the HTTP API under uvicorn."""

from __future__ import annotations

import uvicorn

from glimpse.config import Settings
from glimpse.logs import configure_logging
from glimpse.models.device import limit_cpu_threads
from services.search_api.app import create_app


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "search-api")
    limit_cpu_threads(settings.api.torch_threads)
    uvicorn.run(
        create_app(settings, settle_heap=True),
        host=settings.api.host,
        port=settings.api.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
