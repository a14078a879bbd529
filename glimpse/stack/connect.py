"""Client-side: fill unset endpoints from the running embedded stack (``glimpse up``)."""

from __future__ import annotations

import os

from glimpse.config import Settings
from glimpse.stack.credentials import load_or_create
from glimpse.stack.layout import Endpoints, HomeLayout


class StackNotRunning(RuntimeError):
    pass


def running_endpoints(settings: Settings) -> Endpoints | None:
    """The endpoints of a live ``glimpse up`` for this home, if there is one."""
    endpoints = Endpoints.read(HomeLayout.at(settings.home).endpoints_file)
    if endpoints is None:
        return None
    try:
        os.kill(endpoints.supervisor_pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    return endpoints


def resolve(settings: Settings) -> Settings:
    """Settings with every endpoint set: from the environment, else from ``glimpse up``."""
    if settings.uses_external_services and settings.s3.access_key:
        return settings
    endpoints = running_endpoints(settings)
    if endpoints is None:
        raise StackNotRunning(
            f"glimpse is not running for home {HomeLayout.at(settings.home).home} "
            "(start it with `make up` or `glimpse up --detach`, or set GLIMPSE_S3__ENDPOINT, "
            "GLIMPSE_KAFKA__BOOTSTRAP and GLIMPSE_DATABASE__URL)"
        )
    s = settings.model_copy(deep=True)
    s.s3.endpoint = s.s3.endpoint or endpoints.s3_url
    s.kafka.bootstrap = s.kafka.bootstrap or endpoints.kafka_bootstrap
    s.database.url = s.database.url or _database_url(settings) or endpoints.database_url
    if not s.s3.access_key and endpoints.s3_credentials_file:
        creds = load_or_create(HomeLayout.at(settings.home).s3_credentials)
        s.s3.access_key, s.s3.secret_key = creds.access_key, creds.secret_key
    return s


def _database_url(settings: Settings) -> str | None:
    """The unmasked URL ``glimpse up`` keeps for clients, when this user may read it."""
    try:
        return HomeLayout.at(settings.home).database_url.read_text().strip() or None
    except OSError:
        return None
