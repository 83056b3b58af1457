"""The web UI's serving decisions and the object links, without I/O: which requests get the page, the page's
Content-Security-Policy, files inside the build, entity tags, snapshot and clip paths, login codes."""

from pathlib import Path

import pytest

from spectare.api.httpcache import etag_matches, quoted_etag
from spectare.api.links import clip_key_of, clip_path, snapshot_key_of, snapshot_path
from spectare.api.stills import keyframe_etag
from spectare.api.webui import content_security_policy, content_type, file_under, is_navigation, prefers_html
from spectare.core.sessions import login_code_key, new_login_code, session_id_of
from spectare.schemas.keys import clip_key, snapshot_key

CHROMIUM_NAVIGATION = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;"
                       "q=0.8,application/signed-exchange;v=b3;q=0.7")


@pytest.mark.parametrize("accept, html", [
    (CHROMIUM_NAVIGATION, True),
    ("text/html", True),
    ("text/*", True),
    ("*/*", False),  # curl, fetch's default: a tie is not a preference
    (None, False),
    ("", False),
    ("application/json", False),  # the page's own fetches
    ("application/json, text/html;q=0.5", False),
    ("text/html;q=0.9, application/json;q=0.1", True),
    ("text/html;q=0, */*", False),
    ("text/html;q=nonsense", False),
    ("image/avif,image/webp,*/*;q=0.8", False),  # an <img>
])
def test_prefers_html(accept, html):
    assert prefers_html(accept) is html


@pytest.mark.parametrize("method, mode, accept, navigation", [
    ("GET", "navigate", "*/*", True),
    ("GET", "cors", CHROMIUM_NAVIGATION, True),  # Accept alone is enough (no Sec-Fetch-* from old browsers)
    ("GET", "cors", "application/json", False),
    ("GET", None, "*/*", False),
    ("HEAD", "navigate", None, True),
    ("POST", "navigate", CHROMIUM_NAVIGATION, False),  # a form post is never the page
])
def test_is_navigation(method, mode, accept, navigation):
    assert is_navigation(method, mode, accept) is navigation


def test_the_csp_allows_this_origin_only_and_names_websockets_to_a_sane_host():
    csp = content_security_policy("127.0.0.1:8080")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == directives["script-src"] == directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080"
    assert directives["img-src"] == "'self' data: blob:" and directives["media-src"] == "'self' blob:"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe" not in csp
    for hostile in ("evil.example; script-src *", "a b", "x\r\nSet-Cookie: y", None, ""):
        assert "ws://" not in content_security_policy(hostile)
    assert "ws://[::1]:8080" in content_security_policy("[::1]:8080")


def test_file_under_stays_inside_the_build(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "index-abc.js").write_text("x")
    (tmp_path / "index.html").write_text("<html>")
    (tmp_path / "assets" / "out").symlink_to(tmp_path / "index.html")
    assets = tmp_path / "assets"
    assert file_under(assets, "index-abc.js") == (assets / "index-abc.js").resolve()
    for bad in ("../index.html", "/etc/passwd", "", ".", "out", "missing.js", "a\x00b", "%2e%2e/index.html"):
        assert file_under(assets, bad) is None, bad


@pytest.mark.parametrize("name, kind", [
    ("a.js", "text/javascript; charset=utf-8"), ("a.css", "text/css; charset=utf-8"), ("a.svg", "image/svg+xml"),
    ("a.woff2", "font/woff2"), ("A.PNG", "image/png"), ("a.bin", "application/octet-stream"),
])
def test_content_types(name, kind):
    assert content_type(Path(name)) == kind


@pytest.mark.parametrize("header, matches", [
    ('"s1-42"', True), ('W/"s1-42"', True), ('"x", "s1-42"', True), ("*", True), ('"s1-43"', False),
    ("s1-42", False), ('"s1-42" garbage', False), (None, False), ("", False), ('"s1-4"', False),
])
def test_etag_matches(header, matches):
    assert etag_matches(header, keyframe_etag("s1", 42)) is matches


def test_quoted_etag_keeps_only_what_an_etag_holds():
    assert quoted_etag('a"b c') == '"a_b_c"' and keyframe_etag("0a1b-2", 7) == '"0a1b-2-7"'


def test_snapshot_paths_round_trip_and_refuse_other_keys():
    key = snapshot_key("porch", 1_764_230_400.25, "a/b%c", 17)  # a session with characters keys encode
    path = snapshot_path("/nvr", "porch", key)
    assert path is not None and path.startswith("/nvr/cameras/byname/porch/snapshots/2025/11/27/08/")
    from urllib.parse import unquote
    tail = unquote(path.split("/snapshots/", 1)[1])  # what the route receives
    assert snapshot_key_of("porch", tail) == key
    for other in (None, snapshot_key("yard", 1_764_230_400.25, "s", 1), "snapshots/porch/../../footage/x.jpg",
                  "footage/porch/2025/11/27/08/20251127T080000.000Z-s-1.mp4"):
        assert snapshot_path("", "porch", other) is None
    for tail in ("../yard/2025/11/27/08/20251127T080000.000Z-s-1.jpg", "2025/11/27/08/x.jpg",
                 "2025/11/27/08/20251127T080000.000Z-s-1.jpg/../../x", ""):
        assert snapshot_key_of("porch", tail) is None


def test_clip_paths_round_trip_and_refuse_other_names():
    key = clip_key("porch", 1_764_230_400.0, 1_764_230_460.5)
    path = clip_path("", "porch", key)
    assert path == "/cameras/byname/porch/clips/20251127T080000.000Z-20251127T080100.500Z.mp4"
    assert clip_key_of("porch", path.rsplit("/", 1)[1].removesuffix(".mp4")) == key
    assert clip_path("", "yard", key) is None
    for file in ("../../footage/x", "20251127T080000.000Z", "a-b", ""):
        assert clip_key_of("porch", file) is None


def test_login_codes_are_not_cookies_and_name_their_own_keys():
    code_id, code = new_login_code()
    assert code.startswith(f"spl_{code_id}_") and len(code) == 4 + 16 + 1 + 43
    assert login_code_key(code) == f"code.{code_id}"
    assert session_id_of(code) is None  # a code is no cookie, and no cookie's key is a code's
    for bad in ("", "spl_x_y", "sps_" + code[4:], code + "!", code.upper()):
        assert login_code_key(bad) is None
