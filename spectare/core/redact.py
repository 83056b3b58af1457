"""Keep camera credentials out of every output: URLs print as rtsp://user:***@host/..."""

import re

# user:password@ in any scheme://authority, and password-like query parameters (some cameras take
# credentials as ?user=admin&password=...).
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s/]*)(?P<tail>@)")
_QUERY = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|pass|token|secret|key)=)(?P<secret>[^&\s#]*)", re.I)

MASK = "***"


def redact(text: str) -> str:
    """Return text with every URL password and password-like query value replaced by ***."""
    text = _USERINFO.sub(lambda m: m["head"] + MASK + m["tail"], text)
    return _QUERY.sub(lambda m: m["head"] + MASK, text)
