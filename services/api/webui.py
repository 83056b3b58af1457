"""The web UI, served by the API's own process and port: `/` is the page (`[api] web_dir`/index.html, the Vite
build of web/), `/assets/*` its scripts and styles, and every other path no API route answers is the page again
when a browser navigates to it (`/cameras/porch`, `/explore`: the page's own routes, drawn in the browser).

Page routes and API routes share one namespace, so the rule is: an API route that matches always answers (a
navigation to `/docs`, to a snapshot or to a clip download gets what it names), and only a path that no route
matches falls back to the page, and only for a browser navigation (`Sec-Fetch-Mode: navigate`, or an `Accept`
preferring text/html); `fetch` and curl on an unknown path get the JSON 404. The fallback is the router's
`default` app, which Starlette calls only after every route (and its trailing-slash redirect) failed to match.

The page carries a Content-Security-Policy allowing only this origin (plus `blob:` media and workers for MSE and
hls.js, `data:` images, WebSockets to this host): a script injected into a page (a camera's friendly name, say)
can neither load code from elsewhere nor send anything away.
"""

import hashlib
import html
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .httpcache import etag_matches, quoted_etag
from .state import get_state

router = APIRouter(include_in_schema=False)

IMMUTABLE = "public, max-age=31536000, immutable"  # Vite names every asset by its content's hash
NOT_BUILT = "the web UI is not built: run `make setup` (it runs `npm ci && npm run build` in web/)"
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8", ".json": "application/json",
    ".map": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg",
    ".webp": "image/webp", ".ico": "image/x-icon", ".woff2": "font/woff2", ".woff": "font/woff",
    ".ttf": "font/ttf", ".wasm": "application/wasm", ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?")
_TOP_LEVEL_FILE = re.compile(r"/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


# -- decisions ------------------------------------------------------------------------------------------------------


def content_security_policy(host: str | None) -> str:
    """The page's CSP: this origin only; blob: for MSE/HLS media and hls.js's worker; data: images (the icon);
    WebSockets to the request's own host (CSP 3's 'self' covers ws: too; older browsers need it named)."""
    sockets = f" ws://{host} wss://{host}" if host and _HOST.fullmatch(host) else ""
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "media-src 'self' blob:; worker-src 'self' blob:; font-src 'self'; "
            f"connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


def page_headers(host: str | None) -> dict[str, str]:
    return {"Cache-Control": "no-cache", "Content-Security-Policy": content_security_policy(host),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def _quality(accept: str, kind: str) -> float:
    """The quality `accept` gives media type `kind` (`type/subtype`): its most specific matching range."""
    main = kind.split("/")[0]
    best, best_rank = 0.0, -1
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        rank = {kind: 2, f"{main}/*": 1, "*/*": 0}.get(media, -1)
        if rank <= best_rank:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best, best_rank = q, rank
    return best


def prefers_html(accept: str | None) -> bool:
    """Whether an `Accept` header ranks text/html above JSON (a browser's navigation does; `*/*` ties: no)."""
    return bool(accept) and _quality(accept or "", "text/html") > _quality(accept or "", "application/json")


def is_navigation(method: str, sec_fetch_mode: str | None, accept: str | None) -> bool:
    """Whether a request is a browser opening a page (so an unknown path gets the page, not a JSON 404)."""
    return method in ("GET", "HEAD") and (sec_fetch_mode == "navigate" or prefers_html(accept))


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def file_under(root: Path, relative: str) -> Path | None:
    """The regular file `relative` names inside `root`, None for anything else (missing, a folder, `..`, a link
    out of it)."""
    if not relative or "\x00" in relative:
        return None
    try:
        base = root.resolve()
        path = (base / relative).resolve()
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(base) and path.is_file() else None


# -- answers --------------------------------------------------------------------------------------------------------


def _not_built(host: str | None) -> HTMLResponse:
    body = (f"<!doctype html><meta charset=utf-8><title>Spectare</title><h1>Spectare</h1>"
            f"<p>{html.escape(NOT_BUILT)}. The JSON API is up: see <a href=\"/docs\">/docs</a>.</p>")
    return HTMLResponse(body, 503, headers={**page_headers(host), "Retry-After": "60"})


def page(web_dir: Path, host: str | None, if_none_match: str | None, head: bool = False) -> Response:
    """index.html with the page's headers (no-cache, revalidated by ETag), or the 503 page when not built."""
    try:
        body = (web_dir / "index.html").read_bytes()
    except OSError:
        return _not_built(host)
    etag = quoted_etag(hashlib.sha256(body).hexdigest()[:32])
    headers = {**page_headers(host), "ETag": etag}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(b"" if head else body, media_type="text/html; charset=utf-8", headers=headers)


def _web_dir(request: Request) -> Path:
    return get_state(request).api.web_dir


@router.api_route("/", methods=["GET", "HEAD"])
async def index(request: Request) -> Response:
    """The web UI."""
    return page(_web_dir(request), request.headers.get("host"), request.headers.get("if-none-match"),
                request.method == "HEAD")


@router.api_route("/assets/{path:path}", methods=["GET", "HEAD"])
async def asset(path: str, request: Request) -> Response:
    """A file of the build (hashed names: cached for good)."""
    found = file_under(_web_dir(request) / "assets", path)
    if found is None:
        return Response(f"no asset {path!r} in the web UI's build\n", 404, media_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})
    return FileResponse(found, media_type=content_type(found),
                        headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"})


class PageFallback:
    """The router's default app: a file at the build's top level (favicon.ico, robots.txt), else the page for a
    browser navigation, else the router's own 404."""

    def __init__(self, not_found: ASGIApp) -> None:
        self.not_found = not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            request = Request(scope, receive)
            web_dir, path = _web_dir(request), scope["path"]
            top = file_under(web_dir, path[1:]) if _TOP_LEVEL_FILE.fullmatch(path) else None
            response: Response | None = None
            if top is not None and top.name != "index.html":
                response = FileResponse(top, media_type=content_type(top),
                                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
            elif is_navigation(scope["method"], request.headers.get("sec-fetch-mode"), request.headers.get("accept")):
                response = page(web_dir, request.headers.get("host"), request.headers.get("if-none-match"),
                                scope["method"] == "HEAD")
            if response is not None:
                await response(scope, receive, send)
                return
        await self.not_found(scope, receive, send)
