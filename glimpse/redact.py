"""Connection strings with their passwords masked, for anything printed or written."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: in the userinfo of a URL, in a
    ``password=`` query parameter, or in a libpq ``key=value`` string."""
    if "://" not in url:
        return _KEYWORD_PASSWORD.sub(rf"\g<1>{MASK}", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hosts}" if has_password else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key == "password" for key, _ in pairs):
            masked = [(key, MASK if key == "password" else value) for key, value in pairs]
            query = urlencode(masked, safe="*/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
