"""Browser login: `POST /auth/login` turns an API token into a session cookie that every endpoint takes in place
of the bearer header, against the API as real subprocesses over real NATS, with ingest recording `cam1` from the
RTSP test camera (so snapshot.jpg has a keyframe to show).

Two API processes share the stack: `api` with the default session settings, and `proxied` as if behind a TLS
proxy (`public_origin` https, 2-second sessions). `authorize_websocket` is tested on a tiny WebSocket route of
an in-process app. Every token and cookie value any test sees is kept, and none may appear in the APIs' logs.
"""

import asyncio
import contextlib
import json
import time
from http.cookies import SimpleCookie

import httpx
import pytest
import uvicorn
import websockets
from fastapi import WebSocket

from spectare.api.app import create_app
from spectare.api.auth import SESSION_COOKIE, authorize_websocket
from spectare.api.settings import ApiSettings
from spectare.api.state import ApiState
from spectare.core.bus import connect, ensure_topology
from spectare.core.registry import CameraRegistry
from spectare.core.sessions import SessionStore
from spectare.core.tokens import TokenStore
from spectare.local.process import free_port
from spectare.schemas import CameraConfig, Detection

from .helpers import ServiceProcess, api_answering, eventually, run_cli, settings_for

PUBLIC_ORIGIN = "https://nvr.example:8443"
CROSS_ORIGIN = ("cross-origin request with the session cookie: a change (or a WebSocket) made with it must send "
                "an Origin header equal to this API's own origin")


class Stack:
    def __init__(self, settings, urls: dict[str, str], processes: dict[str, ServiceProcess]) -> None:
        self.settings = settings
        self.urls = urls
        self.processes = processes
        self.secrets: set[str] = set()  # every token and cookie value handed out; none may be logged
        self.admin = self.read = ""

    def token(self, scope: str, name: str) -> str:
        done = run_cli(self.settings, "token", "create", "--scope", scope, "--name", name)
        assert done.returncode == 0, done.stderr
        self.secrets.add(done.stdout.strip())
        return done.stdout.strip()

    def client(self, api: str = "api", cookie: str | None = None, token: str | None = None,
               origin: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if origin:
            headers["Origin"] = origin
        if cookie:  # a header, not httpx's jar: a cookie the server clears is still sent, to see it refused
            headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
        return httpx.AsyncClient(base_url=self.urls[api], headers=headers, timeout=30)

    async def login(self, token: str, api: str = "api", **headers: str) -> tuple[httpx.Response, str]:
        """The login answer and the cookie it set ('' when none)."""
        async with self.client(api) as anonymous:
            answer = await anonymous.post("/auth/login", json={"token": token}, headers=headers)
        cookie = SimpleCookie(answer.headers.get("set-cookie", ""))
        value = cookie[SESSION_COOKIE].value if SESSION_COOKIE in cookie else ""
        if value:
            self.secrets.add(value)
        return answer, value


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, rtsp_camera, tmp_path_factory):
    root = tmp_path_factory.mktemp("api-login")
    settings = settings_for(nats_server, s3_server, root / "state")
    nc = await connect(settings, "test-api-login")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    registry = await CameraRegistry.open(js, settings)
    await registry.put(CameraConfig(name="cam1", url=rtsp_camera.url("cam1"), detect=False))
    ports = {"api": free_port(), "proxied": free_port()}
    processes = {
        "api": ServiceProcess("api", settings, root / "api.log", SPECTARE_API__PORT=str(ports["api"]),
                              SPECTARE_API__SSE_PING_S="0.5", SPECTARE_API__SSE_MAX_S="5"),
        "proxied": ServiceProcess("api", settings, root / "proxied.log", SPECTARE_API__PORT=str(ports["proxied"]),
                                  SPECTARE_API__PUBLIC_ORIGIN=PUBLIC_ORIGIN, SPECTARE_API__SESSION_TTL_S="2"),
        "ingest": ServiceProcess("ingest", settings, root / "ingest.log"),
    }
    for process in processes.values():
        process.start()
    result = Stack(settings, {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, processes)
    result.nc, result.js = nc, js
    try:
        for name in ports:
            await api_answering(processes[name], result.urls[name])
        result.admin = result.token("admin", "tests")
        result.read = result.token("read", "browser")
        yield result
    finally:
        for process in processes.values():
            process.stop()
        await nc.close()
    for name in ports:
        log = processes[name].log
        assert "Traceback" not in log, log[-3000:]
        leaked = [s[:12] for s in result.secrets if s in log or s.split("_", 2)[2] in log]
        assert not leaked, f"{len(leaked)} token or cookie value(s) in the {name} log"
    assert "browser session for read token" in processes["api"].log  # logins are logged (without secrets)


def cookie_attributes(answer: httpx.Response) -> dict[str, str]:
    """The session cookie's attributes as Set-Cookie sent them (lower-case names; flags map to '')."""
    parts = [p.strip() for p in answer.headers["set-cookie"].split(";")]
    assert parts[0].startswith(f"{SESSION_COOKIE}=")
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts[1:]}


async def test_login_sets_an_http_only_strict_cookie_that_works_without_the_header(stack):
    before = time.time()
    answer, cookie = await stack.login(stack.read)
    assert answer.status_code == 200, answer.text
    who = answer.json()
    assert who["token_id"] == stack.read.split("_")[1] and who["name"] == "browser" and who["scope"] == "read"
    assert before + 12 * 3600 - 5 < who["expires_at"] < time.time() + 12 * 3600 + 5
    assert cookie.startswith("sps_") and stack.read not in answer.text
    attributes = cookie_attributes(answer)
    assert {k: attributes.get(k) for k in ("httponly", "samesite", "path", "max-age")} == {
        "httponly": "", "samesite": "strict", "path": "/", "max-age": str(12 * 3600)}
    assert "secure" not in attributes  # plain http straight to the API
    behind_tls, _ = await stack.login(stack.read, **{"X-Forwarded-Proto": "https"})  # uvicorn trusts 127.0.0.1
    assert "secure" in cookie_attributes(behind_tls)

    async with stack.client(cookie=cookie) as browser:
        assert (await browser.get("/cameras")).status_code == 200
        assert (await browser.get("/tokens/me")).json() == {"id": who["token_id"], "name": "browser",
                                                            "scope": "read"}

        async def picture():
            shot = await browser.get("/cameras/byname/cam1/snapshot.jpg")
            return shot if shot.status_code == 200 else None

        shot = await eventually(picture, 60, what="a snapshot of cam1 with the cookie")
        assert shot.headers["content-type"] == "image/jpeg" and shot.content[:2] == b"\xff\xd8"

        async with browser.stream("GET", "/detections/stream", params={"camera": "cam1"}) as sse:
            assert sse.status_code == 200 and sse.headers["content-type"].startswith("text/event-stream")
            lines = sse.aiter_lines()
            assert (await anext(lines)).startswith("retry:")  # open: now publish
            detection = Detection(camera="cam1", time=time.time(), label="person", class_id=0, score=0.8,
                                  box=(0.1, 0.2, 0.3, 0.4), model="test", session="s", seq=1)
            await stack.js.publish(stack.settings.names.detections("cam1", "person"), detection.encode())
            event = await anext(line async for line in lines if line.startswith("data: "))
        assert json.loads(event[len("data: "):])["score"] == 0.8

        # The session has the token's scope: a read session may not change cameras.
        refused = await browser.delete("/cameras/byname/cam1", headers={"Origin": stack.urls["api"]})
        assert refused.status_code == 403 and "needs an admin token" in refused.json()["detail"]


async def test_a_wrong_token_gets_401_with_one_line_and_no_cookie(stack):
    altered = stack.read[:-1] + ("A" if stack.read[-1] != "A" else "B")
    for wrong in ("nonsense", "spt_0123456789ab_" + "x" * 43, altered):
        answer, cookie = await stack.login(wrong)
        assert answer.status_code == 401 and answer.json() == {"detail": "unknown or revoked API token"}
        assert not cookie and "set-cookie" not in answer.headers
    async with stack.client() as anonymous:
        in_url = await anonymous.post("/auth/login", params={"token": stack.read})  # the body is the only way
        assert in_url.status_code == 422 and stack.read not in in_url.text
        missing = await anonymous.get("/cameras")
        assert missing.status_code == 401 and "POST /auth/login" in missing.json()["detail"]
    async with stack.client(cookie="sps_0123456789abcdef_" + "y" * 43) as forged:
        answer = await forged.get("/cameras")
        assert answer.status_code == 401 and answer.json()["detail"].startswith("unknown or ended session")


async def code_login(stack, body: dict) -> tuple[httpx.Response, str]:
    async with stack.client() as anonymous:
        answer = await anonymous.post("/auth/login", json=body, headers={"Origin": stack.urls["api"]})
    cookie = SimpleCookie(answer.headers.get("set-cookie", ""))
    value = cookie[SESSION_COOKIE].value if SESSION_COOKIE in cookie else ""
    if value:
        stack.secrets.add(value)
    return answer, value


async def test_a_login_code_logs_in_once_with_its_tokens_scope(stack):
    tokens = await TokenStore.open(stack.js, stack.settings)
    sessions = await SessionStore.open(stack.js, stack.settings, tokens)
    admin, read = await tokens.verify(stack.admin), await tokens.verify(stack.read)
    code = await sessions.create_login_code(admin)
    stack.secrets.add(code)
    assert code.startswith("spl_") and stack.admin.split("_", 2)[2] not in code
    answer, cookie = await code_login(stack, {"code": code})
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_id"] == admin.id and answer.json()["scope"] == "admin" and cookie
    async with stack.client(cookie=cookie) as browser:
        assert (await browser.get("/tokens/me")).json()["id"] == admin.id
    used, cookie = await code_login(stack, {"code": code})
    assert used.status_code == 401 and "unknown, used or expired login code" in used.json()["detail"]
    assert not cookie and code not in used.text

    read_code = await sessions.create_login_code(read)
    stack.secrets.add(read_code)
    answer, _ = await code_login(stack, {"code": read_code})
    assert answer.status_code == 200 and answer.json()["scope"] == "read"

    made = time.time()
    expiring = await sessions.create_login_code(admin, ttl_s=0.05)
    stack.secrets.add(expiring)
    await eventually(lambda: time.time() > made + 0.05, 5, what="the code's 50 ms to pass")
    expired, cookie = await code_login(stack, {"code": expiring})
    assert expired.status_code == 401 and "expired" in expired.json()["detail"] and not cookie

    for wrong in ("spl_0123456789abcdef_" + "z" * 43, stack.admin, "nonsense"):
        refused, cookie = await code_login(stack, {"code": wrong})
        assert refused.status_code == 401 and not cookie, wrong
    for body in ({"code": code, "token": stack.admin}, {}):
        refused, _ = await code_login(stack, body)
        assert refused.status_code == 422 and "send either token or code" in refused.text, body


async def test_two_uses_of_one_login_code_at_once_cannot_both_win(stack):
    tokens = await TokenStore.open(stack.js, stack.settings)
    sessions = await SessionStore.open(stack.js, stack.settings, tokens)
    admin = await tokens.verify(stack.admin)
    for _ in range(5):
        code = await sessions.create_login_code(admin)
        stack.secrets.add(code)
        answers = await asyncio.gather(*(code_login(stack, {"code": code}) for _ in range(3)))
        assert sorted(answer.status_code for answer, _ in answers) == [200, 401, 401]


async def test_logout_ends_the_session_and_clears_the_cookie(stack):
    _, cookie = await stack.login(stack.read)
    async with stack.client(cookie=cookie) as browser:
        assert (await browser.get("/cameras")).status_code == 200
        cross = await browser.post("/auth/logout", headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403 and cross.json() == {"detail": CROSS_ORIGIN}
        assert (await browser.get("/cameras")).status_code == 200, "a refused logout ends nothing"
        done = await browser.post("/auth/logout", headers={"Origin": stack.urls["api"]})
        assert done.status_code == 204 and not done.content
        cleared = cookie_attributes(done)
        assert cleared["max-age"] == "0" and cleared["path"] == "/"
        ended = await browser.get("/cameras")
        assert ended.status_code == 401 and ended.json()["detail"].startswith("unknown or ended session")
    async with stack.client() as anonymous:
        assert (await anonymous.post("/auth/logout")).status_code == 204  # no session: nothing to end


async def test_an_expired_session_and_a_revoked_tokens_session_get_401(stack):
    began = time.monotonic()
    answer, short = await stack.login(stack.read, api="proxied", Origin=PUBLIC_ORIGIN)
    assert answer.status_code == 200 and cookie_attributes(answer)["max-age"] == "2"
    assert "secure" in cookie_attributes(answer), "an https public origin: the browser reaches us over TLS"
    async with stack.client("proxied", cookie=short) as browser:
        first = await browser.get("/cameras")
        assert first.status_code == 200 or time.monotonic() - began >= 2, "a fresh session works"

        async def expired():
            answer = await browser.get("/cameras")
            return answer if answer.status_code == 401 else None

        gone = await eventually(expired, 30, what="the 2-second session expiring")
        assert gone.json()["detail"].startswith("the session has expired")

    temporary = stack.token("read", "temporary")
    _, cookie = await stack.login(temporary)
    async with stack.client(cookie=cookie) as browser:
        assert (await browser.get("/cameras")).status_code == 200
        revoked = run_cli(stack.settings, "token", "revoke", temporary.split("_")[1])
        assert revoked.returncode == 0, revoked.stderr
        answer = await browser.get("/cameras")
        assert answer.status_code == 401
        assert answer.json()["detail"] == (f"token {temporary.split('_')[1]} of this session was revoked: log in "
                                           "with another token")


async def test_a_change_with_the_cookie_needs_a_same_origin_request(stack):
    _, cookie = await stack.login(stack.admin)
    body = {"url": "rtsp://192.0.2.9/x", "detect": False}
    async with stack.client(cookie=cookie) as browser:
        for origin in ("https://evil.example", "null", f"{stack.urls['api']}.evil.example", None):
            headers = {"Origin": origin} if origin else {}
            answer = await browser.put("/cameras/byname/sneaky", json=body, headers=headers)
            assert answer.status_code == 403 and answer.json() == {"detail": CROSS_ORIGIN}, origin
        assert (await browser.get("/cameras/byname/sneaky")).status_code == 404, "the refused change did nothing"
        assert (await browser.get("/cameras", headers={"Origin": "https://evil.example"})).status_code == 200

        same = stack.urls["api"]
        made = await browser.put("/cameras/byname/browser-made", json=body, headers={"Origin": same})
        assert made.status_code in (200, 201), made.text
        assert (await browser.delete("/cameras/byname/browser-made", headers={"Origin": same})).status_code == 204

    # Behind a proxy the browser's Origin is the public one.
    _, behind = await stack.login(stack.admin, api="proxied", Origin=PUBLIC_ORIGIN)
    async with stack.client("proxied", cookie=behind, origin=PUBLIC_ORIGIN) as browser:
        assert (await browser.put("/cameras/byname/proxied-made", json=body)).status_code in (200, 201)
        assert (await browser.delete("/cameras/byname/proxied-made")).status_code == 204

    # A bearer token is no ambient credential: no Origin needed, a foreign one does not matter.
    async with stack.client(token=stack.admin, origin="https://evil.example") as script:
        assert (await script.put("/cameras/byname/bearer-made", json=body)).status_code in (200, 201)
        assert (await script.delete("/cameras/byname/bearer-made")).status_code == 204

    # Login CSRF: another site's page may not log the browser in.
    answer, cookie = await stack.login(stack.read, Origin="https://evil.example")
    assert answer.status_code == 403 and not cookie


@pytest.fixture
async def ws_app(stack):
    """The API app in this process with one extra route, `/probe/ws`, that needs `admin` through
    authorize_websocket and sends the token's id."""
    state = await ApiState.open(stack.settings, ApiSettings(), stack.nc, 1)
    app = create_app(state)

    @app.websocket("/probe/ws")
    async def probe(websocket: WebSocket) -> None:
        token = await authorize_websocket(websocket, "admin")
        if token is not None:
            await websocket.accept()
            await websocket.send_text(token.id)
            await websocket.close()

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, 30, what="the in-process app serving")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)


async def _ws(address: str, origin: str | None = None, **headers: str) -> tuple[str | None, int | None, str]:
    """(the text the probe sent or None, close code, close reason) of one WebSocket to the probe route."""
    async with websockets.connect(f"ws://{address}/probe/ws", origin=origin, additional_headers=headers,
                                  open_timeout=10) as socket:
        try:
            text = await asyncio.wait_for(socket.recv(), 10)
        except websockets.ConnectionClosed:
            text = None
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(socket.recv(), 10)
        assert socket.close_code is not None
        return text, socket.close_code, socket.close_reason or ""


async def test_authorize_websocket_takes_the_bearer_or_a_same_origin_cookie(stack, ws_app):
    admin_id = stack.admin.split("_")[1]
    _, admin_cookie = await stack.login(stack.admin)
    _, read_cookie = await stack.login(stack.read)
    cookie = f"{SESSION_COOKIE}={admin_cookie}"
    own = f"http://{ws_app}"

    assert await _ws(ws_app, Authorization=f"Bearer {stack.admin}") == (admin_id, 1000, "")
    assert await _ws(ws_app, origin=own, Cookie=cookie) == (admin_id, 1000, "")
    assert await _ws(ws_app, origin="https://evil.example", Cookie=cookie) == (
        None, 1008, "cross-origin request with the session cookie")
    assert await _ws(ws_app, Cookie=cookie) == (None, 1008, "cross-origin request with the session cookie")
    assert await _ws(ws_app, origin=own) == (None, 1008, "missing API token")
    assert await _ws(ws_app, Authorization="Bearer spt_0123456789ab_" + "x" * 43) == (
        None, 1008, "unknown or revoked API token")
    assert await _ws(ws_app, origin=own, Cookie=f"{SESSION_COOKIE}={read_cookie}") == (
        None, 1008, f"this needs an admin token; token {stack.read.split('_')[1]} has scope read")
