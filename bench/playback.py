"""Playback benchmark: live video in a real browser, seeking a week back, and what playback costs the API and
the segmenter. One stack (nats-server, SeaweedFS, an RTSP test camera serving the recording benchmark's 1080p15
clip, ingest, segmenter, indexer and API processes) and one headless Chromium (Playwright), logged in with the
session cookie as the browser app is.

- Live latency, per frame, from its capture (the wall time ingest gives it: the `stream` message's wall_time +
  the frame's presentation time, read from its fragment) to its fragment being in the page's MediaSource buffer
  (`updateend`), and to it being shown (requestVideoFrameCallback's expected display time), at 1 and 8 viewers
  (one page each, the test kit's live player). The first 3 s of each viewer (the GOP it starts with) are left
  out. Ingest's packets wait up to `group_max_s` (1 s) to travel together, which bounds how fresh a live frame
  can be, so while the API streams a camera live ingest uses `live_group_max_s` (0.2 s) for it. Measured at
  that default and at `live_group_max_s = 1.0` (no shorter groups while watched, as before the switch).
- Pipeline CPU while watched: ingest, the segmenter and nats-server over each live phase against the same
  processes with no viewer (the shorter groups cost there, in messages, not in the API).
- API CPU per live viewer: the API's CPU with N viewers less its CPU with none, per viewer, in % of one core.
- Seek: a camera `archive` with a week of 10 s chunks in the index (Segment events, as the segmenter announces
  them; the chunks around each moment sought are real fMP4 chunks the stack recorded, copied to their keys):
  from the page asking for the hour's playlist from a moment to the first frame of that moment shown.
- API CPU per playlist request: that hour's playlist (360 chunks), asked in turn; the indexer's CPU beside it.
- Segmenter, fMP4 against plain MP4: the segmenter process's CPU per chunk as it ran (fMP4), and, in the same
  run, this process remuxing the clip's chunks both ways (alternating rounds); the extra is the difference over
  the segmenter's CPU per chunk with plain chunks (measured less that difference).
"""

import asyncio
import io
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from playwright.async_api import async_playwright

from spectare.core.store import s3_client
from spectare.local.stack import DEMO_SOURCE
from spectare.local.testcam import make_test_clip
from spectare.media.fmp4 import FRAGMENTED_MP4_OPTIONS
from spectare.schemas import Segment
from spectare.schemas.keys import chunk_key
from spectare.schemas.msgids import segment_id
from spectare.segmenter.remux import Remuxer
from tests.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    hls_player_html,
    live_player_html,
    login,
    new_context,
    open_test_page,
)
from tests.packets import PLAIN_MP4_OPTIONS, load_clip, plans_of

from .cpu import CpuMeter
from .recording import CLIP, FPS
from .stack import BenchStack

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SEGMENT_SECONDS = 10
LIVE = "live"
ARCHIVE = "archive"
WEEK_S = 7 * 86400.0
HOUR_S = 3600.0
READ_AHEAD = 3  # hls.js buffers 30 s ahead: the chunks after a moment sought are stored too
WARMUP_S = 3.0  # each live viewer's first seconds: the GOP it starts with, sent at once
GOAL_LIVE_P95_S, GOAL_SEEK_S, GOAL_SEGMENTER_EXTRA = 1.0, 1.0, 0.05


def add_arguments(parser) -> None:
    group = parser.add_argument_group("playback")
    group.add_argument("--playback-seconds", type=float, default=30.0,
                       help="measured seconds per live phase (default 30)")
    group.add_argument("--playback-viewers", default="1,8", help="comma-separated live viewer counts (default 1,8)")
    group.add_argument("--playback-live-groups", default="0.2,1.0",
                       help="ingest live_group_max_s values to measure live latency at (default 0.2 (ingest's "
                            "default),1.0 (= group_max_s: no shorter groups while watched))")
    group.add_argument("--playback-seeks", type=int, default=5, help="moments a week back sought (default 5)")
    group.add_argument("--playback-playlists", type=int, default=100,
                       help="hour playlists asked for, to measure their CPU (default 100)")


def run(args) -> None:
    clip = make_test_clip(DEMO_SOURCE, CLIP, width=1920, height=1080, fps=FPS, gop_seconds=1, seconds=30,
                          bitrate_kbps=4000)
    load_before = round(os.getloadavg()[0], 2)
    result = asyncio.run(_bench(args, clip))
    result.update({"benchmark": "playback", "clip": "1920x1080 15 fps H.264 ~4 Mbit/s, 1 s GOP",
                   "segment_seconds": SEGMENT_SECONDS, "measured_seconds": args.playback_seconds,
                   "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "load_before": load_before, "load_after": round(os.getloadavg()[0], 2)})
    _print(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "playback.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "playback.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'playback.json'} and playback.md")


# -- the run -----------------------------------------------------------------------------------------------------




async def _bench(args, clip: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-playback-"))
    stack = BenchStack(work, {LIVE: clip}, SEGMENT_SECONDS)
    groups = [float(g) for g in str(args.playback_live_groups).split(",") if g.strip()]
    viewer_counts = [int(v) for v in str(args.playback_viewers).split(",") if v.strip()]
    try:
        await stack.start()
        began = time.time()
        stack.restart_ingest(SPECTARE_INGEST__LIVE_GROUP_MAX_S=str(groups[0]))
        print("playback benchmark: waiting for two recorded chunks ...", flush=True)
        recorded = await stack.until(lambda: _at_least(stack.chunks(LIVE, began), 2), 90, "two chunks recorded")
        sample_chunk = _s3_object(stack, recorded[1]["key"])  # the first chunk starts mid-stream
        async with async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = await new_context(browser)
            home = await context.new_page()
            await open_test_page(home, stack.base_url, "home", "<!doctype html><title>bench</title>")
            assert (await login(home, stack.token))["status"] == 200

            live_rows = []
            chunks_before = len(await stack.chunks(LIVE, began))
            segmenter = CpuMeter({"segmenter": [stack.pid("segmenter")]})
            segmenter.start()
            segmenter_began = time.time()
            for n, group in enumerate(groups):
                if n:
                    stack.restart_ingest(SPECTARE_INGEST__LIVE_GROUP_MAX_S=str(group))
                    await asyncio.sleep(3)
                print(f"playback benchmark: live, ingest live_group_max_s={group:g} ...", flush=True)
                idle = await _idle_cpu(stack, args.playback_seconds / 2)
                for count in viewer_counts:
                    live_rows.append(await _live(stack, context, group, count, args.playback_seconds, idle))
                    _print_live(live_rows)
                _extra_viewer_cpu([r for r in live_rows if r["live_group_max_s"] == group])
            segmenter_used = segmenter.stop()["segmenter"]
            segmenter_seconds = time.time() - segmenter_began
            chunks_during = len(await stack.chunks(LIVE, began)) - chunks_before

            print("playback benchmark: a week of chunks for the archive camera ...", flush=True)
            moments = await _archive(stack, sample_chunk, args.playback_seeks)
            playlists = await _playlists(stack, moments[0], args.playback_playlists)
            seeks = [await _seek(stack, context, moment) for moment in moments]
            await browser.close()
        remux = _remux_costs(clip)
    finally:
        await stack.stop()
        shutil.rmtree(work, ignore_errors=True)

    per_chunk_ms = 1000 * segmenter_used / max(chunks_during, 1)
    extra_ms = remux["fragmented_ms"] - remux["plain_ms"]
    return {
        "live": live_rows,
        "seek": {"moments": len(seeks), "seconds": [s["seconds"] for s in seeks],
                 "p50_s": _round(statistics.median(s["seconds"] for s in seeks)),
                 "max_s": _round(max(s["seconds"] for s in seeks)),
                 "date_error_max_s": _round(max(abs(s["date_error_s"]) for s in seeks)),
                 "errors": [e for s in seeks for e in s["errors"]]},
        "playlist": playlists,
        "segmenter": {"cpu_s": round(segmenter_used, 3), "seconds": round(segmenter_seconds, 1),
                      "chunks": chunks_during, "cpu_ms_per_chunk": round(per_chunk_ms, 2),
                      "cpu_pct_of_core": round(100 * segmenter_used / segmenter_seconds, 2),
                      "remux_plain_ms_per_chunk": remux["plain_ms"],
                      "remux_fragmented_ms_per_chunk": remux["fragmented_ms"],
                      "extra_ms_per_chunk": round(extra_ms, 3),
                      "extra_fraction": round(extra_ms / (per_chunk_ms - extra_ms), 4)},
    }


async def _at_least(chunks, count: int):
    found = await chunks
    return found if len(found) >= count else None


def _s3_object(stack: BenchStack, key: str) -> bytes:
    client = s3_client(stack.settings.s3)
    response = client.get_object(stack.settings.s3.bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


async def _idle_cpu(stack: BenchStack, seconds: float) -> dict[str, float]:
    """The API's and the recording pipeline's CPU (seconds per second) over `seconds` with no viewer."""
    meter = CpuMeter({"api": [stack.pid("api")], "pipeline": stack.pipeline_pids()})
    meter.start()
    await asyncio.sleep(seconds)
    return {name: used / seconds for name, used in meter.stop().items()}


async def _live(stack: BenchStack, context, group: float, count: int, seconds: float,
                idle_cpu: dict[str, float]) -> dict:
    pages = []
    for _ in range(count):
        page = await context.new_page()
        await open_test_page(page, stack.base_url, "live", live_player_html(f"/cameras/byname/{LIVE}/live"))
        pages.append(page)
    await asyncio.sleep(WARMUP_S)
    meter = CpuMeter({"api": [stack.pid("api")], "browser": _descendants(os.getpid(), "chromium"),
                      "pipeline": stack.pipeline_pids()})
    meter.start()
    t0 = time.time()
    await asyncio.sleep(seconds)
    t1 = time.time()
    used = meter.stop()
    api_cpu = used["api"] / seconds
    buffered, shown, first, skipped, errors = [], [], [], 0, []
    for page in pages:
        live = await page.evaluate("({opened: live.opened, buffered: live.buffered, shown: live.shown,"
                                   " skipped: live.skipped, errors: live.errors, closed: live.closed})")
        buffered += [at - captured for at, captured in live["buffered"] if t0 <= at <= t1]
        shown += [at - captured for at, captured in live["shown"] if t0 <= at <= t1]
        if live["shown"]:
            first.append(live["shown"][0][0] - live["opened"])
        skipped += sum(s["frames"] for s in live["skipped"])
        errors += live["errors"] + ([f"closed {live['closed']}"] if live["closed"] else [])
        await page.close()
    await asyncio.sleep(1)
    return {"live_group_max_s": group, "viewers": count,
            "buffered_p50_s": _pct(buffered, 50), "buffered_p95_s": _pct(buffered, 95),
            "shown_p50_s": _pct(shown, 50), "shown_p95_s": _pct(shown, 95),
            "frames_buffered": len(buffered), "frames_shown": len(shown),
            "frames_expected": round(count * seconds * FPS),
            "first_frame_max_s": _round(max(first)) if first else None,
            "api_cpu_pct_per_viewer": round(100 * (api_cpu - idle_cpu["api"]) / count, 2),
            "api_cpu_pct": round(100 * api_cpu, 2), "api_cpu_pct_idle": round(100 * idle_cpu["api"], 2),
            # CPU-s per camera-minute that watching adds to ingest + segmenter + nats-server (shorter groups)
            "pipeline_cpu_s_per_min_watched": round(60 * used["pipeline"] / seconds, 3),
            "pipeline_cpu_s_per_min_unwatched": round(60 * idle_cpu["pipeline"], 3),
            "browser_cpu_pct": round(100 * used["browser"] / seconds, 1),
            "skipped_frames": skipped, "errors": errors}


def _extra_viewer_cpu(rows: list[dict]) -> None:
    """The API's CPU for each viewer past the first (the first one also starts the camera's feed)."""
    one = next((r for r in rows if r["viewers"] == 1), None)
    for row in rows:
        if one is not None and row["viewers"] > 1:
            row["api_cpu_pct_per_extra_viewer"] = round((row["api_cpu_pct"] - one["api_cpu_pct"])
                                                        / (row["viewers"] - 1), 2)


def _descendants(root: int, name: str) -> list[int]:
    """The pids of `root`'s descendant processes whose command names `name` (the browser's, under Playwright's
    driver)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    out = []
    for pid in found:
        try:
            if name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                out.append(pid)
        except OSError:
            continue
    return out


async def _archive(stack: BenchStack, chunk: bytes, seeks: int) -> list[float]:
    """Announce a week of back-to-back 10 s chunks of camera ARCHIVE, from a week and an hour ago, as the segmenter
    does; store `chunk` (real fMP4) at the keys of the chunk holding each moment to be sought and of the
    READ_AHEAD after it; wait for the indexer to hold them all, and return those moments."""
    t0 = round(time.time() - WEEK_S - HOUR_S, 3)
    count = int(WEEK_S / SEGMENT_SECONDS)
    session = "s" + secrets.token_hex(3)
    frames = SEGMENT_SECONDS * FPS
    moments = [t0 + HOUR_S + (k + 0.5) * (WEEK_S - 2 * HOUR_S) / seeks + 3.7 for k in range(seeks)]
    real = {int((m - t0) // SEGMENT_SECONDS) + d for m in moments for d in range(READ_AHEAD + 1)}
    client = s3_client(stack.settings.s3)
    segments = []
    for i in range(count):
        start = t0 + i * SEGMENT_SECONDS
        key = chunk_key(ARCHIVE, start, session, i * frames)
        segments.append(Segment(camera=ARCHIVE, bucket=stack.settings.s3.bucket, key=key, session=session,
                                first_seq=i * frames, last_seq=(i + 1) * frames - 1, start=start,
                                end=start + SEGMENT_SECONDS, frames=frames, bytes=len(chunk), codec="h264",
                                width=1920, height=1080))
        if i in real:
            await asyncio.to_thread(_put, client, stack.settings.s3.bucket, key, chunk)
    subject = stack.settings.names.footage(ARCHIVE)
    for at in range(0, count, 500):
        batch = segments[at:at + 500]
        await asyncio.gather(*(stack.js.publish(subject, s.encode(), timeout=30,
                                                headers={"Nats-Msg-Id": segment_id(ARCHIVE, s.session, s.first_seq)})
                               for s in batch))
    last = segments[-1]
    await stack.until(lambda: _at_least(stack.chunks(ARCHIVE, last.start - 1, last.end), 1), 300,
                       "the indexer holding the week")
    return moments


def _put(client, bucket: str, key: str, data: bytes) -> None:
    client.put_object(bucket, key, io.BytesIO(data), len(data), content_type="video/mp4")


async def _playlists(stack: BenchStack, moment: float, requests: int) -> dict:
    path = f"/cameras/byname/{ARCHIVE}/vod.m3u8"
    params = {"start": repr(moment), "end": repr(moment + HOUR_S)}
    meter = CpuMeter({"api": [stack.pid("api")], "indexer": [stack.pid("indexer")]})
    walls = []
    async with stack.client() as client:
        first = await client.get(path, params=params)
        assert first.status_code == 200, first.text
        segments = first.text.count("#EXTINF")
        meter.start()
        for _ in range(requests):
            began = time.perf_counter()
            answer = await client.get(path, params=params)
            walls.append(time.perf_counter() - began)
            assert answer.status_code == 200
        used = meter.stop()
    return {"requests": requests, "segments_per_playlist": segments, "bytes": len(first.content),
            "api_cpu_ms_per_request": round(1000 * used["api"] / requests, 2),
            "indexer_cpu_ms_per_request": round(1000 * used["indexer"] / requests, 2),
            "wall_p50_ms": round(1000 * statistics.median(walls), 1)}


async def _seek(stack: BenchStack, context, moment: float) -> dict:
    """One fresh page seeking to `moment`: from asking for the playlist to the moment's first frame shown, and how
    far hls.playingDate is from the moment there."""
    page = await context.new_page()
    url = f"/cameras/byname/{ARCHIVE}/vod.m3u8?start={moment!r}&end={moment + HOUR_S!r}"
    await open_test_page(page, stack.base_url, "seek", hls_player_html(url, start_at=moment))
    covering = 1 / FPS - 0.001  # the frame shown at the moment starts up to a frame before it
    deadline = time.monotonic() + 30
    while True:
        player = await page.evaluate("({loaded: player.loaded, errors: player.errors, samples: player.samples,"
                                     " frames: player.frames, start: player.startPosition})")
        start = player["start"]
        shown = [at for at, media in player["frames"] if start is not None and media >= start - covering]
        dated = [s for s in player["samples"] if start is not None and s[0] >= start - covering]
        if shown and dated:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no frame shown seeking to {moment}: {player['errors']}")
        await asyncio.sleep(0.1)
    await page.close()
    current, date, _frames = dated[0]
    return {"seconds": shown[0] - player["loaded"], "date_error_s": date - (moment + current - start),
            "errors": player["errors"]}


def _remux_costs(clip: Path, rounds: int = 3, chunks: int = 100) -> dict:
    plans = plans_of(load_clip(clip), segment_seconds=SEGMENT_SECONDS)[:-1]
    remuxers = {"plain": Remuxer(PLAIN_MP4_OPTIONS), "fragmented": Remuxer(FRAGMENTED_MP4_OPTIONS)}
    for remuxer in remuxers.values():
        remuxer.remux(plans[0])  # templates opened
    spent: dict[str, list[float]] = {name: [] for name in remuxers}
    for _ in range(rounds):
        for name, remuxer in remuxers.items():
            began = time.process_time()
            for i in range(chunks):
                remuxer.remux(plans[i % len(plans)])
            spent[name].append(1000 * (time.process_time() - began) / chunks)
    return {f"{name}_ms": round(statistics.median(values), 3) for name, values in spent.items()}


# -- numbers and tables ------------------------------------------------------------------------------------------


def _round(value: float) -> float:
    return round(value, 3)


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return _round(ordered[min(len(ordered) - 1, int(pct / 100 * (len(ordered) - 1) + 0.5))])


def _print_live(rows: list[dict]) -> None:
    print("live latency, capture -> in the MSE buffer / shown (s); API CPU per viewer (% of a core)")
    headers = ["live grp", "viewers", "buf p50", "buf p95", "shown p50", "shown p95", "frames", "first", "api %",
               "api %/v", "browser %", "skipped", "pipe s/m"]
    print("  ".join(f"{h:>9}" for h in headers))
    for r in rows:
        cells = [r["live_group_max_s"], r["viewers"], r["buffered_p50_s"], r["buffered_p95_s"], r["shown_p50_s"],
                 r["shown_p95_s"], f"{r['frames_shown']}/{r['frames_expected']}", r["first_frame_max_s"],
                 r["api_cpu_pct"], r["api_cpu_pct_per_viewer"], r["browser_cpu_pct"], r["skipped_frames"],
                 f"{r['pipeline_cpu_s_per_min_watched']}/{r['pipeline_cpu_s_per_min_unwatched']}"]
        print("  ".join(f"{c!s:>9}" for c in cells))


def _print(result: dict) -> None:
    _print_live(result["live"])
    seek, playlist, seg = result["seek"], result["playlist"], result["segmenter"]
    print(f"seek a week back -> first frame shown: p50 {seek['p50_s']} s, max {seek['max_s']} s over "
          f"{seek['moments']} moments (playingDate within {seek['date_error_max_s']} s of the moment)")
    print(f"hour playlist ({playlist['segments_per_playlist']} chunks): API {playlist['api_cpu_ms_per_request']} ms "
          f"CPU, indexer {playlist['indexer_cpu_ms_per_request']} ms CPU per request, {playlist['wall_p50_ms']} ms "
          "wall p50")
    print(f"segmenter: {seg['cpu_ms_per_chunk']} ms CPU per chunk ({seg['cpu_pct_of_core']} % of a core); remux "
          f"plain {seg['remux_plain_ms_per_chunk']} ms, fMP4 {seg['remux_fragmented_ms_per_chunk']} ms: fMP4 costs "
          f"{100 * seg['extra_fraction']:.2f} % more")


def _live_verdicts(rows: list[dict]) -> list[str]:
    """One line per ingest live_group_max_s: whether the p95 goal holds at every viewer count, and where the browser
    could not show every frame (its CPU, not the API's, is then the limit)."""
    out = []
    for group in dict.fromkeys(r["live_group_max_s"] for r in rows):
        mine = [r for r in rows if r["live_group_max_s"] == group]
        worst_buffer = max(r["buffered_p95_s"] or 0.0 for r in mine)
        worst_shown = max(r["shown_p95_s"] or 0.0 for r in mine)
        met = {True: "met", False: "not met"}
        line = (f"- live_group_max_s {group:g}: the worst p95 is {worst_buffer} s to the buffer (goal "
                f"{met[worst_buffer <= GOAL_LIVE_P95_S]}), {worst_shown} s to the screen (goal "
                f"{met[worst_shown <= GOAL_LIVE_P95_S]}).")
        short = [r for r in mine if r["frames_shown"] < 0.95 * r["frames_expected"]]
        if short:
            line += " " + "; ".join(f"{r['viewers']} viewers: {r['frames_shown']}/{r['frames_expected']} frames shown "
                                    f"with the browser at {r['browser_cpu_pct']} % of a core" for r in short)
            line += " (the one Chromium decoding every viewer's 1080p is short of CPU on this machine)."
        out.append(line)
    return out


def markdown(result: dict) -> str:
    seek, playlist, seg = result["seek"], result["playlist"], result["segmenter"]
    lines = [
        f"# Playback benchmark ({result['when']}, {result['cpus']} CPUs)",
        "",
        f"{result['clip']}; {result['segment_seconds']} s chunks; one headless Chromium (Playwright) logged in with "
        f"the session cookie; {result['measured_seconds']:.0f} s measured per live phase. 1-minute load average "
        f"{result['load_before']} before and {result['load_after']} after the run (the machine is shared). "
        "Method: `bench/playback.py`'s docstring.",
        "",
        "## Live view (WebSocket -> MediaSource)",
        "",
        "Latency of each frame from its capture to its fragment in the page's MSE buffer, and to it being shown "
        f"(goal: p95 <= {GOAL_LIVE_P95_S:g} s), with the test kit's player (it keeps 0.3-0.6 s behind the end of what "
        "is buffered). Ingest's packets wait up to `group_max_s` (1 s) to travel together; while a camera is watched "
        "live ingest uses `live_group_max_s` for it (default 0.2; 1.0 is the same as no switch). CPU in % of one "
        "core: the API's, per viewer ((with the viewers - with none) / viewers; the first viewer also starts the "
        "camera's feed), per viewer past the first, and the browser's (every viewer's page decodes 1080p15 in the "
        "one headless Chromium). Pipeline: ingest + segmenter + nats-server in CPU-s per minute while watched, "
        "and in the same phase's minute before any viewer.",
        "",
        "| ingest live_group_max_s | viewers | buffer p50 | buffer p95 | shown p50 | shown p95 | frames shown | "
        "first frame after (max) | API CPU | per viewer | per extra viewer | browser CPU | frames skipped | "
        "pipeline watched / unwatched |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["live"]:
        extra = r.get("api_cpu_pct_per_extra_viewer")
        lines.append(f"| {r['live_group_max_s']:g} | {r['viewers']} | {r['buffered_p50_s']} s | "
                     f"{r['buffered_p95_s']} s | "
                     f"{r['shown_p50_s']} s | {r['shown_p95_s']} s | {r['frames_shown']}/{r['frames_expected']} | "
                     f"{r['first_frame_max_s']} s | {r['api_cpu_pct']} % | {r['api_cpu_pct_per_viewer']} % | "
                     f"{'' if extra is None else f'{extra} %'} | {r['browser_cpu_pct']} % | {r['skipped_frames']} | "
                     f"{r['pipeline_cpu_s_per_min_watched']} / {r['pipeline_cpu_s_per_min_unwatched']} CPU-s/min |")
    lines += ["", *_live_verdicts(result["live"])]
    lines += [
        "",
        "## Seek a week back",
        "",
        f"From asking for the hour's playlist at a moment a week back (a week of {result['segment_seconds']} s chunks "
        f"in the index) to that moment's first frame shown (goal <= {GOAL_SEEK_S:g} s): p50 **{seek['p50_s']} s**, "
        f"max {seek['max_s']} s over {seek['moments']} moments ({', '.join(f'{s:.3f}' for s in seek['seconds'])}); "
        f"hls.playingDate within {seek['date_error_max_s']} s of the moment asked for. hls.js errors: "
        f"{len(seek['errors'])}, fatal {sum('fatal=true' in e for e in seek['errors'])}.",
        "",
        "## Playlist requests",
        "",
        f"An hour's playlist ({playlist['segments_per_playlist']} chunks, {playlist['bytes']:,} bytes), asked "
        f"{playlist['requests']} times in turn: API **{playlist['api_cpu_ms_per_request']} ms** CPU per request, the "
        f"indexer {playlist['indexer_cpu_ms_per_request']} ms; {playlist['wall_p50_ms']} ms wall p50.",
        "",
        "## Segmenter: fMP4 against plain MP4 chunks",
        "",
        f"The segmenter process over the live phases: {seg['cpu_ms_per_chunk']} ms CPU per chunk "
        f"({seg['chunks']} chunks in {seg['seconds']:.0f} s, {seg['cpu_pct_of_core']} % of a core). Remuxing the "
        f"clip's chunks in the same run: plain {seg['remux_plain_ms_per_chunk']} ms, fMP4 "
        f"{seg['remux_fragmented_ms_per_chunk']} ms per chunk. fMP4 costs the segmenter "
        f"**{100 * seg['extra_fraction']:.2f} %** more than plain chunks would (goal <= "
        f"{100 * GOAL_SEGMENTER_EXTRA:g} %).",
        "",
    ]
    return "\n".join(lines)
