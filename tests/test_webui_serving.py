"""The API serves the web UI's build (web/dist, `make setup`) from its own process and port, against real API
processes over real NATS: the page at `/` and at the page's own routes for browser navigations only (fetch and
curl keep getting JSON, API routes always win), the hashed assets cached for good with their content types, the
security headers, a clear 503 page when the build is missing, and the page running in real Chromium under its
Content-Security-Policy without one violation."""

import re

import httpx
import pytest

from spectare.local.process import free_port

from .helpers import ServiceProcess, api_answering, run_cli, settings_for
from .webstack import WEB_BUILD

NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
FETCH = {"Sec-Fetch-Mode": "cors", "Accept": "application/json"}
PAGE_ROUTES = ("/login", "/cameras/porch", "/explore", "/settings/cameras", "/settings/cameras/porch", "/system",
               "/cameras/porch?t=2026-11-27T14:03:10Z", "/no/such/page")


@pytest.fixture(scope="module")
async def apis(nats_server, s3_server, tmp_path_factory):
    assert WEB_BUILD.is_file(), f"{WEB_BUILD} is missing: run `make setup` (it builds the web UI)"
    root = tmp_path_factory.mktemp("webui")
    settings = settings_for(nats_server, s3_server, root / "state")
    (root / "empty").mkdir()
    ports = {"built": free_port(), "unbuilt": free_port()}
    processes = {
        "built": ServiceProcess("api", settings, root / "built.log", SPECTARE_API__PORT=str(ports["built"])),
        "unbuilt": ServiceProcess("api", settings, root / "unbuilt.log", SPECTARE_API__PORT=str(ports["unbuilt"]),
                                  SPECTARE_API__WEB_DIR=str(root / "empty")),
    }
    for process in processes.values():
        process.start()
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        for name, process in processes.items():
            await api_answering(process, urls[name])
        done = run_cli(settings, "token", "create", "--scope", "admin")
        assert done.returncode == 0, done.stderr
        yield urls, done.stdout.strip()
    finally:
        for process in processes.values():
            process.stop()
    for process in processes.values():
        assert "Traceback" not in process.log, process.log[-3000:]


def assert_page_headers(answer: httpx.Response) -> None:
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
    assert "ws://127.0.0.1:" in csp and "media-src 'self' blob:" in csp and "img-src 'self' data: blob:" in csp


async def test_the_page_at_root_and_at_its_routes_for_navigations(apis):
    urls, _token = apis
    index = WEB_BUILD.read_bytes()
    async with httpx.AsyncClient(base_url=urls["built"], timeout=30) as browser:
        root = await browser.get("/")  # `/` is the page for anyone, curl included
        assert root.status_code == 200 and root.content == index
        assert root.headers["content-type"] == "text/html; charset=utf-8"
        assert_page_headers(root)
        again = await browser.get("/", headers={"If-None-Match": root.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        for path in PAGE_ROUTES:
            page = await browser.get(path, headers=NAVIGATE)
            assert page.status_code == 200 and page.content == index, path
            assert_page_headers(page)
            by_accept = await browser.get(path, headers={"Accept": NAVIGATE["Accept"]})  # no Sec-Fetch-*: older
            assert by_accept.content == index, path
            for headers in (FETCH, {"Accept": "*/*"}, {}):  # the page's fetches, curl
                missing = await browser.get(path, headers=headers)
                assert missing.status_code == 404, (path, headers)
                assert missing.json() == {"detail": "Not Found"}
        head = await browser.head("/explore", headers=NAVIGATE)
        assert head.status_code == 200 and head.content == b""
        posted = await browser.post("/explore", headers=NAVIGATE)
        assert posted.status_code in (404, 405) and "json" in posted.headers["content-type"]


async def test_api_routes_win_over_the_page_whoever_asks(apis):
    urls, token = apis
    async with httpx.AsyncClient(base_url=urls["built"], timeout=30) as browser:
        for path in ("/cameras", "/search", "/stats", "/tokens/me", "/cameras/byname/porch"):
            for headers in (NAVIGATE, FETCH):
                answer = await browser.get(path, headers=headers)
                assert answer.status_code == 401 and "missing API token" in answer.json()["detail"], path
            authorized = await browser.get(path, headers={**FETCH, "Authorization": f"Bearer {token}"})
            assert "json" in authorized.headers["content-type"], path
        assert (await browser.get("/healthz", headers=NAVIGATE)).json() == {"status": "ok"}
        docs = await browser.get("/docs", headers=NAVIGATE)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        openapi = (await browser.get("/openapi.json", headers=NAVIGATE)).json()
        assert "/cameras/byname/{name}/timeline" in openapi["paths"]
        assert "/" not in openapi["paths"] and not any(p.startswith("/assets") for p in openapi["paths"])
        slash = await browser.get("/cameras/", headers=NAVIGATE)  # the API's trailing-slash redirect still comes first
        assert slash.status_code == 307 and slash.headers["location"].endswith("/cameras")


async def test_assets_are_served_with_their_types_and_cached_for_good(apis):
    urls, _token = apis
    index = WEB_BUILD.read_text()
    names = re.findall(r'(?:src|href)="(/assets/[^"]+)"', index)
    assert any(n.endswith(".js") for n in names) and any(n.endswith(".css") for n in names), index
    async with httpx.AsyncClient(base_url=urls["built"], timeout=30) as browser:
        for name in names:
            answer = await browser.get(name)
            assert answer.status_code == 200, name
            assert answer.content == (WEB_BUILD.parent / name.lstrip("/")).read_bytes()
            expected = "text/javascript; charset=utf-8" if name.endswith(".js") else "text/css; charset=utf-8"
            assert answer.headers["content-type"] == expected
            assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert answer.headers["x-content-type-options"] == "nosniff"
        for bad in ("/assets/nope.js", "/assets/%2e%2e/index.html", "/assets/..%2findex.html", "/assets/"):
            answer = await browser.get(bad, headers=NAVIGATE)
            assert answer.status_code == 404 and answer.content != WEB_BUILD.read_bytes(), bad


async def test_a_missing_build_is_a_clear_503_page_and_the_api_still_answers(apis):
    urls, _token = apis
    async with httpx.AsyncClient(base_url=urls["unbuilt"], timeout=30) as browser:
        for path, headers in (("/", {}), ("/explore", NAVIGATE), ("/cameras/porch", NAVIGATE)):
            answer = await browser.get(path, headers=headers)
            assert answer.status_code == 503, path
            assert answer.headers["content-type"].startswith("text/html")
            assert "the web UI is not built: run `make setup`" in answer.text
            assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert (await browser.get("/explore", headers=FETCH)).status_code == 404
        assert (await browser.get("/healthz")).json() == {"status": "ok"}
        assert (await browser.get("/cameras")).status_code == 401


@pytest.mark.integration
async def test_the_page_runs_in_chromium_under_its_policy(apis, page):
    urls, token = apis
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    await page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                               "console.error('Content Security Policy violation: ' + e.violatedDirective + ' ' + "
                               "e.blockedURI))")
    # A deep link while logged out: the page (not JSON) comes, runs, and sends the user to log in.
    answer = await page.goto(urls["built"] + "/explore")
    assert answer is not None and answer.status == 200
    await page.wait_for_url(re.compile(r"/login\?next=%2Fexplore$"), timeout=30_000)
    await page.locator("input[name=token]").wait_for(timeout=30_000)
    # Logged in with the cookie, a camera's deep link renders the app's layout.
    status = await page.evaluate("""async (token) => (await fetch("/auth/login", {method: "POST",
        headers: {"content-type": "application/json"}, body: JSON.stringify({token})})).status""", token)
    assert status == 200
    answer = await page.goto(urls["built"] + "/system")
    assert answer is not None and answer.status == 200 and answer.headers["content-security-policy"]
    # A function, not an expression: Playwright polls an expression with eval(), which the page's policy refuses
    # (seen when the app had not rendered at the first look).
    await page.wait_for_function("() => document.querySelector('#app') && document.querySelector('#app').children"
                                 ".length > 0 && !document.querySelector('.loading')", timeout=30_000)
    assert not violations, violations
