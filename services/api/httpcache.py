"""HTTP caching without I/O: entity tags and `If-None-Match` (RFC 9110 §13.1.2), for the answers pages poll or
revalidate (the web UI's index.html, snapshot.jpg)."""

import re

_TAG = re.compile(r'\s*(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')


def quoted_etag(opaque: str) -> str:
    """A strong entity tag for `opaque` (characters an entity tag cannot hold are replaced by '_')."""
    return '"' + re.sub(r'[^\x21\x23-\x7e]', "_", opaque) + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` header names `etag` (weak comparison, as the header asks for: `W/"x"` matches
    `"x"`), or is `*`. A header that does not parse matches nothing (the full answer is sent)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    at, text = 0, if_none_match
    while at < len(text):
        found = _TAG.match(text, at)
        if found is None:
            return False
        if found[1] == etag.removeprefix("W/"):
            return True
        at = found.end()
    return False
