"""Property-based: every operation in /openapi.json, fed generated input, never answers 5xx.

schemathesis generates requests from the API's own schema (valid and invalid ones);
the check is ``not_a_server_error``. Authenticated, so uploads are exercised too.
(Driven through hypothesis directly: schemathesis' pytest plugin does not run under
pytest 9 yet.)
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from harness import RunningStack
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.integration


def raw_body(_ctx: Any, value: Any) -> bytes:
    """Voice and image search take a raw ``audio/*`` / ``image/*`` body: send generated
    bytes (or text) as is."""
    return value if isinstance(value, bytes) else str(value).encode()


def test_no_operation_answers_5xx(stack: RunningStack) -> None:
    schemathesis.serializer("audio/*")(raw_body)
    schemathesis.serializer("image/*")(raw_body)
    base = f"http://{stack.settings.api.host}:{stack.settings.api.port}"
    key = (stack.settings.home / "credentials" / "api-key").read_text().strip()
    auth = {"Authorization": f"Bearer {key}"}
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    assert any(op.path == "/v1/search/image" for op in operations)

    before = requests_served(base)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def never_5xx(case: Any) -> None:
            case.call_and_validate(headers=auth, checks=[not_a_server_error], timeout=30)

        never_5xx()
    assert requests_served(base) - before >= 5 * len(operations)  # it really called the API


def requests_served(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "glimpse_http_requests_total"
    )
