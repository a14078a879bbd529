"""What every request handler needs, built once at startup (app.state.glimpse)."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from fastapi import Request
from psycopg_pool import ConnectionPool

from glimpse.bus import LazyProducer
from glimpse.config import Settings
from glimpse.labels.tagging import ActiveHeads
from glimpse.library_sample import LibrarySample
from glimpse.storage import ObjectStore
from services.search_api.admission import RateLimiter, WaitingLimit
from services.search_api.notifications import QueryNotifications
from services.search_api.query_model import QueryModel
from services.search_api.search_metrics import SearchMetrics

if TYPE_CHECKING:  # image_queries imports auth, which imports this module
    from glimpse.models.joint import JointModel
    from glimpse.models.text import TextEmbedder
    from services.search_api.image_queries import ImageQueries
    from services.search_api.visual_bridge import VisualBridge


@dataclass
class ApiContext:
    settings: Settings
    pool: ConnectionPool[psycopg.Connection[Any]]
    store: ObjectStore
    embedder: QueryModel[TextEmbedder]  # the active text model's query side
    joint: QueryModel[JointModel]  # the active joint image-text model's text side, if any
    producer: LazyProducer
    notifications: QueryNotifications
    upload_rate: RateLimiter
    voice_rate: RateLimiter
    voice_waiting: WaitingLimit
    search_metrics: SearchMetrics
    image_queries: ImageQueries
    label_heads: ActiveHeads  # heads of the active label sets, for predictions
    visual_bridge: VisualBridge  # typed words into the visual model's space (no joint model)
    statement_threads: Executor  # where a search's lists run side by side (glimpse.db.statements)
    library_sample: LibrarySample  # what a query's typical similarity is measured against


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.glimpse
    return ctx
