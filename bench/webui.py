"""Web UI benchmark: time to first picture in a real browser, and what the page weighs.

One stack (nats-server, SeaweedFS, an RTSP test camera serving 16 mounts of a 640x360 15 fps clip with a 1 s GOP,
ingest, segmenter, indexer and API processes; 2 s chunks) and one headless Chromium (Playwright) at 1920x1080
opening the page the API serves (web/dist, built by `make setup`). Each round starts from a fresh browser context
(no cookie, empty cache):

- login -> grid stills: from submitting the login form (a read token) to every one of the 16 tiles showing its
  still (each `<img>` loaded, naturalWidth > 0);
- grid -> live: from clicking a tile to the camera view's live video showing a frame (currentTime > 0);
- timeline click -> playing: from clicking the timeline 30 s back to hls.js playing that moment (the player's
  playingDate within 1 s of the moment clicked, and advancing).

Goal (issue "Web UI"): each <= 1 s on this machine. Beside it, the page's JavaScript and CSS as served, gzipped
(level 9, as a server would), against the goal of 300 KB (Frigate's page is several MB).
"""

import asyncio
import gzip
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from playwright.async_api import async_playwright

from spectare.local.stack import DEMO_SOURCE
from spectare.local.testcam import make_test_clip
from tests.browser import CHROMIUM, CHROMIUM_ARGS

from .stack import BenchStack

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DIST = ROOT / "web" / "dist"
CLIP = ROOT / "assets" / "bench" / "cam-360p15.mp4"
SEGMENT_SECONDS = 2
BACK_S = 30.0
GOAL_S, GOAL_BYTES = 1.0, 300 * 1024
VIEWPORT = {"width": 1920, "height": 1080}


def add_arguments(parser) -> None:
    group = parser.add_argument_group("webui")
    group.add_argument("--webui-cameras", type=int, default=16, help="cameras in the grid (default 16)")
    group.add_argument("--webui-rounds", type=int, default=5, help="rounds of each measurement (default 5)")


def run(args) -> None:
    if not (DIST / "index.html").is_file():
        raise SystemExit(f"{DIST / 'index.html'} is missing: run `make setup` (it builds the web UI)")
    clip = make_test_clip(DEMO_SOURCE, CLIP, width=640, height=360, fps=15, gop_seconds=1, seconds=20)
    load_before = round(os.getloadavg()[0], 2)
    result = asyncio.run(_bench(args, clip))
    result.update({"benchmark": "webui", "cameras": args.webui_cameras, "rounds": args.webui_rounds,
                   "clip": "640x360 15 fps H.264, 1 s GOP", "segment_seconds": SEGMENT_SECONDS,
                   "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
                   "size": page_weight(DIST)})
    print(table(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "webui.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "webui.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'webui.json'} and webui.md")


def page_weight(dist: Path) -> dict:
    """Bytes of the built page's scripts and styles, raw and gzipped."""
    files = sorted(p for p in (dist / "assets").iterdir() if p.suffix in (".js", ".css"))
    raw = {p.name: p.stat().st_size for p in files}
    gz = {p.name: len(gzip.compress(p.read_bytes(), 9)) for p in files}
    return {"files": [{"name": name, "bytes": raw[name], "gzip_bytes": gz[name]} for name in raw],
            "bytes": sum(raw.values()), "gzip_bytes": sum(gz.values())}


async def _bench(args, clip: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-webui-"))
    cameras = {f"cam{n:02d}": clip for n in range(1, args.webui_cameras + 1)}
    stack = BenchStack(work, cameras, SEGMENT_SECONDS)
    try:
        await stack.start()
        stack.restart_ingest()
        print(f"webui benchmark: {len(cameras)} cameras recording; waiting for {BACK_S + 10:.0f} s of footage ...",
              flush=True)
        began = time.time()
        await stack.until(lambda: _recorded(stack, "cam01", began, BACK_S + 10), 180, "footage of cam01")
        rounds: dict[str, list[float]] = {"grid": [], "live": [], "timeline": []}
        errors: list[str] = []
        async with async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for n in range(args.webui_rounds):
                context = await browser.new_context(viewport=VIEWPORT)
                page = await context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                grid, live, timeline = await _round(stack, page, len(cameras))
                rounds["grid"].append(grid)
                rounds["live"].append(live)
                rounds["timeline"].append(timeline)
                print(f"  round {n + 1}: login -> grid {grid:.3f} s, grid -> live {live:.3f} s, "
                      f"timeline -> playing {timeline:.3f} s", flush=True)
                await context.close()
            await browser.close()
    finally:
        await stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {"seconds": rounds, "errors": errors,
            "p50_s": {k: round(statistics.median(v), 3) for k, v in rounds.items()},
            "max_s": {k: round(max(v), 3) for k, v in rounds.items()}}


async def _recorded(stack: BenchStack, camera: str, began: float, seconds: float) -> bool:
    chunks = await stack.chunks(camera, began)
    return bool(chunks) and chunks[-1]["end"] - chunks[0]["start"] >= seconds


async def _round(stack: BenchStack, page, cameras: int) -> tuple[float, float, float]:
    await page.goto(stack.base_url + "/login")
    await page.fill("input[name=token]", stack.token)
    submitted = time.perf_counter()
    await page.click("button[type=submit]")
    await page.wait_for_function(
        """(count) => {
            const stills = [...document.querySelectorAll('.tile img')];
            return stills.length === count && stills.every((img) => img.complete && img.naturalWidth > 0);
        }""", arg=cameras, polling="raf", timeout=30_000)
    grid = time.perf_counter() - submitted

    clicked = time.perf_counter()
    await page.click(".tile[data-camera=cam01] a")
    await page.wait_for_function("() => { const v = document.querySelector('video.live'); "
                                 "return v !== null && v.currentTime > 0; }", polling="raf", timeout=30_000)
    live = time.perf_counter() - clicked

    view = await page.evaluate("() => window.__spectare.timeline")
    moment = time.time() - BACK_S
    track = await page.locator(".tl-track").bounding_box()
    assert track is not None, "no timeline track on the camera view"
    x = track["x"] + (moment - view["start"]) / (view["end"] - view["start"]) * track["width"]
    moment = view["start"] + (x - track["x"]) / track["width"] * (view["end"] - view["start"])
    clicked = time.perf_counter()
    await page.mouse.click(x, track["y"] + track["height"] / 2)
    await page.wait_for_function(
        """(moment) => {
            const p = window.__spectare && window.__spectare.playback;
            return p && typeof p.playingDate === 'number' && Math.abs(p.playingDate - moment) < 1
                   && p.currentTime > 0;
        }""", arg=moment, polling="raf", timeout=30_000)
    timeline = time.perf_counter() - clicked
    return grid, live, timeline


def table(result: dict) -> str:
    p50, most, size = result["p50_s"], result["max_s"], result["size"]
    rows = [("login -> grid stills", "grid"), ("grid -> live video", "live"), ("timeline click -> playing", "timeline")]
    lines = [f"web UI, {result['cameras']} cameras, {result['rounds']} rounds (goal <= {GOAL_S:g} s each)",
             f"{'':<28}{'p50':>9}{'max':>9}{'goal':>10}"]
    for label, key in rows:
        lines.append(f"{label:<28}{p50[key]:>8.3f}s{most[key]:>8.3f}s{'met' if p50[key] <= GOAL_S else 'NOT met':>10}")
    lines.append(f"page JS+CSS gzipped: {size['gzip_bytes'] / 1024:.1f} KB ({size['bytes'] / 1024:.1f} KB raw), "
                 f"goal <= {GOAL_BYTES // 1024} KB: {size['gzip_bytes'] / GOAL_BYTES:.2f} of it")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    p50, most, size, seconds = result["p50_s"], result["max_s"], result["size"], result["seconds"]
    rows = [("Login to grid stills shown", "grid"), ("Grid to live video playing", "live"),
            ("Timeline click (30 s back) to that moment playing", "timeline")]
    lines = [
        f"# Web UI benchmark ({result['when']}, {result['cpus']} CPUs)",
        "",
        f"{result['cameras']} cameras ({result['clip']}, {result['segment_seconds']} s chunks) recorded by the whole "
        f"stack; headless Chromium at 1920x1080, a fresh context (no cookie, empty cache) per round, "
        f"{result['rounds']} rounds. 1-minute load average {result['load_before']} before and {result['load_after']} "
        "after (the machine is shared). Method: `bench/webui.py`'s docstring.",
        "",
        "| time to first picture | p50 | max | rounds | goal <= 1 s |",
        "|---|---|---|---|---|",
    ]
    for label, key in rows:
        each = ", ".join(f"{s:.3f}" for s in seconds[key])
        lines.append(f"| {label} | **{p50[key]:.3f} s** | {most[key]:.3f} s | {each} | "
                     f"{'met' if p50[key] <= GOAL_S else 'not met'} ({p50[key] / GOAL_S:.2f} of it) |")
    lines += ["", "## The page's weight", "",
              f"JavaScript and CSS as served, gzipped: **{size['gzip_bytes'] / 1024:.1f} KB** "
              f"({size['bytes'] / 1024:.1f} KB raw); goal <= {GOAL_BYTES // 1024} KB: "
              f"{size['gzip_bytes'] / GOAL_BYTES:.2f} of it.", "",
              "| file | bytes | gzipped |", "|---|---|---|"]
    lines += [f"| {f['name']} | {f['bytes']:,} | {f['gzip_bytes']:,} |" for f in size["files"]]
    if result["errors"]:
        lines += ["", "Page errors: " + "; ".join(result["errors"][:10])]
    return "\n".join(lines) + "\n"
