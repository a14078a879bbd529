from __future__ import annotations

import pytest

from glimpse.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:s3cr%3At@db.example.com:5432/glimpse?sslmode=require",
            "postgresql://app:***@db.example.com:5432/glimpse?sslmode=require",
        ),
        (
            "postgresql://app@db:5432/glimpse?password=s3cret&sslmode=require",
            "postgresql://app@db:5432/glimpse?password=***&sslmode=require",
        ),
        ("host=db user=app password='s3 cret' dbname=g", "host=db user=app password=*** dbname=g"),
        ("host=db password=s3cret", "host=db password=***"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cr" not in redact_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://glimpse@127.0.0.1:15432/glimpse?passfile=/home/me/.glimpse/credentials/pgpass",
        "postgresql://127.0.0.1/glimpse",
        "host=db user=app",
    ],
)
def test_urls_without_a_password_are_left_alone(url: str) -> None:
    assert redact_url(url) == url
