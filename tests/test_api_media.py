"""Recorded playback as HLS through the real API (`python -m spectare.api`) over real NATS, S3, an indexer and the
RTSP test camera recorded by ingest and the segmenter: the playlist of a range lists the recorded chunks with
their times, ffmpeg decodes it across chunks with the bearer header, segments come through the API as fragmented
MP4 (an old plain-MP4 chunk remuxed on the way), the segment route serves nothing outside its camera's chunks,
windows cover long ranges, bad input is one line. One test measures the API's CPU for one segment and for one
1-hour playlist (printed; run with -s to see it).
"""

import http.client
import io
import math
import os
import subprocess
import time
from urllib.parse import urlsplit

import av
import httpx
import pytest
from minio import Minio

from spectare.api.playlists import program_date_time, segment_uri
from spectare.api.retime import retime
from spectare.core.bus import connect, ensure_topology
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket, s3_client
from spectare.local.process import free_port
from spectare.media.fmp4 import is_fragmented
from spectare.schemas import CameraConfig, Segment, segment_id
from spectare.schemas.keys import chunk_key

from .helpers import ServiceProcess, api_answering, eventually, run_cli, settings_for

MIME = "application/vnd.apple.mpegurl"
FPS = 15  # the RTSP test camera's


class Stack:
    def __init__(self, settings, base_url: str, processes: dict[str, ServiceProcess]) -> None:
        self.settings, self.base_url, self.processes = settings, base_url, processes
        self.token = ""
        self.js = None
        self.s3: Minio | None = None

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token}"} if token != "" else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)

    def ffmpeg(self, url: str, *output: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """`ffmpeg -v error -headers 'Authorization: Bearer ...' -i URL OUTPUT...`, as the README has it."""
        return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-headers", f"Authorization: Bearer {self.token}",
                               "-i", url, *output], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, rtsp_camera, tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    settings = settings_for(nats_server, s3_server, root / "state")
    ensure_bucket(settings.s3)
    nc = await connect(settings, "test-media")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    registry = await CameraRegistry.open(js, settings)
    await registry.put(CameraConfig(name="cam1", url=rtsp_camera.url("cam1"), segment_seconds=2, detect=False))
    port = free_port()
    processes = {
        "api": ServiceProcess("api", settings, root / "api.log", SPECTARE_API__PORT=str(port),
                              SPECTARE_LOG_LEVEL="INFO"),
        "ingest": ServiceProcess("ingest", settings, root / "ingest.log"),
        "segmenter": ServiceProcess("segmenter", settings, root / "segmenter.log"),
        "indexer": ServiceProcess("indexer", settings, root / "indexer.log",
                                  SPECTARE_INDEXER__DATABASE=str(root / "index.duckdb"),
                                  SPECTARE_INDEXER__FLUSH_INTERVAL_S="0.1"),
    }
    for process in processes.values():
        process.start()
    result = Stack(settings, f"http://127.0.0.1:{port}", processes)
    result.js, result.s3 = js, s3_client(settings.s3)
    try:
        await api_answering(processes["api"], result.base_url)
        done = run_cli(settings, "token", "create", "--scope", "read", "--name", "player")
        assert done.returncode == 0, done.stderr
        result.token = done.stdout.strip()
        yield result
    finally:
        for process in processes.values():
            process.stop()
        await nc.close()
    assert "Traceback" not in processes["api"].log, processes["api"].log[-3000:]
    assert result.token not in processes["api"].log  # nor in any URL it logged


async def recorded(stack: Stack, count: int, since: str = "10m") -> list[dict]:
    """At least `count` chunks of cam1 indexed, in time order."""
    async with stack.client() as reader:
        async def chunks():
            answer = (await reader.get("/cameras/byname/cam1/footage", params={"start": since})).json()
            return answer["chunks"] if len(answer.get("chunks", [])) >= count else None

        return await eventually(chunks, 90, interval=0.5, what=f"{count} chunks of cam1 indexed")


def segment_lines(text: str) -> list[tuple[str, float, str]]:
    """(PROGRAM-DATE-TIME, EXTINF, URI) of each segment."""
    found, date, duration = [], "", 0.0
    for line in text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = line.split(":", 1)[1]
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].rstrip(","))
        elif line and not line.startswith("#"):
            found.append((date, duration, line))
    return found


def tail(key: str, camera: str = "cam1") -> str:
    return key.removeprefix(f"footage/{camera}/")


async def closed_range(stack: Stack, chunks: int) -> tuple[list[dict], str]:
    """The first `chunks` chunks recorded and a URL of their VOD playlist (waits until the range has closed)."""
    refs = (await recorded(stack, chunks + 1))[:chunks]
    start, end = refs[0]["start"], refs[-1]["end"] - 0.01
    await eventually(lambda: time.time() >= end + 31, 60, interval=0.5, what="the range closing")
    return refs, f"{stack.base_url}/cameras/byname/cam1/vod.m3u8?start={start!r}&end={end!r}"


async def test_the_playlist_of_a_range_lists_its_chunks_with_their_times_and_ffmpeg_decodes_it(stack):
    refs, url = await closed_range(stack, 4)
    async with stack.client() as reader:
        answer = await reader.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == MIME
    text = answer.text
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:7\n")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.endswith("#EXT-X-ENDLIST\n")
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in text
    found = segment_lines(text)
    positions = [sum(r["end"] - r["start"] for r in refs[:i]) for i in range(len(refs))]
    assert [uri for _, _, uri in found] == [segment_uri("cam1", r["key"], at) for r, at in zip(refs, positions,
                                                                                             strict=True)]
    assert found[1][2].startswith(f"segments/at/{round(positions[1] * 1000)}/")
    assert [date for date, _, _ in found] == [program_date_time(r["start"]) for r in refs]
    assert [d for _, d, _ in found] == [pytest.approx(r["end"] - r["start"], abs=1e-6) for r in refs]
    target = int(text.split("#EXT-X-TARGETDURATION:")[1].split("\n")[0])
    assert target == math.ceil(max(r["end"] - r["start"] for r in refs) - 1e-9)
    assert "#EXT-X-DISCONTINUITY" not in text  # one session, back to back

    decoded = stack.ffmpeg(url, "-f", "null", "-")
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr
    frames = stack.ffmpeg(url, "-map", "0:v", "-f", "framecrc", "-")
    assert frames.returncode == 0 and frames.stderr == "", frames.stderr
    times = [int(line.split(",")[2]) for line in frames.stdout.splitlines() if line and not line.startswith("#")]
    recorded_s = refs[-1]["end"] - refs[0]["start"]
    assert len(times) == pytest.approx(recorded_s * FPS, abs=2), "every frame of the 4 chunks, once"
    assert times == sorted(set(times)), "one timeline across the chunks"

    # The README's ffplay line, on SDL's dummy drivers: it plays the range through in real time and exits.
    began = time.monotonic()
    played = subprocess.run(["ffplay", "-v", "error", "-autoexit", "-headers", f"Authorization: Bearer {stack.token}",
                             url], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"})
    assert played.returncode == 0 and played.stderr == "", played.stderr
    assert time.monotonic() - began >= recorded_s - 1


async def test_segments_come_through_the_api_as_fragmented_mp4_and_nothing_else_does(stack):
    refs = await recorded(stack, 2)
    key = refs[0]["key"]
    stored = stack.s3.get_object(stack.settings.s3.bucket, key).read()
    async with stack.client() as reader:
        answer = await reader.get(f"/cameras/byname/cam1/segments/{tail(key)}")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "video/mp4"
        assert answer.headers["cache-control"] == "private, max-age=31536000, immutable"
        assert answer.content == stored and is_fragmented(answer.content)  # at position 0: as stored
        assert int(answer.headers["content-length"]) == len(stored)
        # A minute into a playlist: the stored chunk with its media time moved by a minute, every box's size kept.
        moved = await reader.get(f"/cameras/byname/cam1/segments/at/60000/{tail(key)}")
        assert moved.status_code == 200 and moved.content == retime(stored, 60_000) != stored
        assert int(moved.headers["content-length"]) == len(stored)
        with av.open(io.BytesIO(moved.content)) as container:
            first = next(p for p in container.demux(video=0) if p.size)
            assert first.pts * first.time_base == 60

        # Another camera's object, right beside cam1's: reachable only as cam2's, never through cam1's route.
        other = chunk_key("cam2", refs[0]["start"], "s1", 0)
        stack.s3.put_object(stack.settings.s3.bucket, other, io.BytesIO(stored), len(stored))
        assert (await reader.get(f"/cameras/byname/cam1/segments/{tail(other, 'cam2')}")).status_code == 404
        missing = await reader.get(f"/cameras/byname/nosuch/segments/{tail(key)}")
        assert missing.status_code == 404 and "NoSuchKey" in missing.json()["detail"]
        for bad in (f"..%2F..%2Fcam2%2F{tail(other, 'cam2')}", f"{tail(key)[:14]}..%2F..%2F..%2F..%2F..%2Fcam2%2F"
                    f"{tail(other, 'cam2')}", tail(key).replace(".mp4", ".jpg"), "index.html", tail(key) + "%2F"):
            refused = await reader.get(f"/cameras/byname/cam1/segments/{bad}")
            assert refused.status_code == 422, (bad, refused.text)
            assert refused.json()["detail"].startswith("not a chunk of this camera")
        async with stack.client("") as anonymous:
            assert (await anonymous.get(f"/cameras/byname/cam1/segments/{tail(key)}")).status_code == 401

    # A raw `../` path (httpx and browsers squash dot segments; a hand-made request does not).
    parts = urlsplit(stack.base_url)
    for path in (f"/cameras/byname/cam1/segments/../../cam2/segments/{tail(other, 'cam2')}",
                 f"/cameras/byname/cam1/segments/{tail(key)[:14]}../../../../../cam2/{tail(other, 'cam2')}"):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request("GET", path, headers={"Authorization": f"Bearer {stack.token}"})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status in (404, 422), (path, response.status)
        assert b"ftyp" not in body


def plain_mp4(fragmented: bytes) -> bytes:
    """The chunk as the segmenter stored chunks before: plain MP4, moov at the end."""
    out = io.BytesIO()
    with av.open(io.BytesIO(fragmented)) as source, av.open(out, "w", format="mp4",
                                                            options={"fflags": "+bitexact"}) as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.size:
                packet.stream = stream
                target.mux(packet)
    return out.getvalue()


async def test_an_old_plain_mp4_chunk_is_served_as_fragmented_mp4_and_decodes(stack):
    refs = await recorded(stack, 2)
    fragmented = stack.s3.get_object(stack.settings.s3.bucket, refs[0]["key"]).read()
    plain = plain_mp4(fragmented)
    assert not is_fragmented(plain)
    # Stored two hours before anything recorded, and announced on the footage stream as the segmenter did.
    start = refs[0]["start"] - 7200
    end = start + (refs[0]["end"] - refs[0]["start"])
    key = chunk_key("cam1", start, "old-1", 0)
    stack.s3.put_object(stack.settings.s3.bucket, key, io.BytesIO(plain), len(plain), content_type="video/mp4")
    event = Segment(camera="cam1", bucket=stack.settings.s3.bucket, key=key, session="old-1", first_seq=0,
                    last_seq=29, start=start, end=end, frames=30, bytes=len(plain), codec="h264", width=640,
                    height=360)
    await stack.js.publish(stack.settings.names.footage("cam1"), event.encode(),
                           headers={"Nats-Msg-Id": segment_id("cam1", "old-1", 0)})
    url = f"{stack.base_url}/cameras/byname/cam1/vod.m3u8?start={start - 1!r}&end={end + 1!r}"
    async with stack.client() as reader:
        async def listed():
            answer = await reader.get(url)
            return answer.text if f"/{tail(key)}" in answer.text else None

        text = await eventually(listed, 30, what="the old chunk in the playlist")
        [(_, _, uri)] = segment_lines(text)
        assert text.endswith("#EXT-X-ENDLIST\n")
        answer = await reader.get(f"/cameras/byname/cam1/{uri}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "video/mp4"
    assert is_fragmented(answer.content) and answer.content != plain
    with av.open(io.BytesIO(answer.content)) as container:
        frames = [f.pts for f in container.decode(video=0)]
    with av.open(io.BytesIO(plain)) as container:
        assert len(frames) == sum(1 for _ in container.decode(video=0)) > 0
    decoded = stack.ffmpeg(url, "-f", "null", "-")
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr


async def test_a_growing_range_is_an_event_playlist_pinned_to_unix_seconds(stack):
    await recorded(stack, 2)
    async with stack.client() as reader:
        moved = await reader.get("/cameras/byname/cam1/vod.m3u8", params={"start": "2m"})
        assert moved.status_code == 307
        location = moved.headers["location"]
        assert location.startswith("vod.m3u8?start=") and "&end=" in location
        start, end = (float(p.split("=")[1]) for p in location.split("?")[1].split("&"))
        assert end - start == 3600 and abs(start - (time.time() - 120)) < 10
        pinned = f"/cameras/byname/cam1/{location}"
        first = await reader.get(pinned)
        assert first.status_code == 200 and first.headers["cache-control"] == "private, no-cache"
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in first.text and "#EXT-X-ENDLIST" not in first.text
        before = segment_lines(first.text)

        async def grown():
            again = segment_lines((await reader.get(pinned)).text)
            return again if len(again) > len(before) else None

        after = await eventually(grown, 30, what="the playlist growing")
        assert after[:len(before)] == before  # chunks only ever appended

    # The README's line: ffmpeg follows the redirect, plays the growing playlist, sends the header every time, and
    # with -live_start_index 0 starts at the range's first chunk (by default: three chunks before the end).
    first_chunk = after[0][2]
    async with stack.client() as reader:
        segment = (await reader.get(f"/cameras/byname/cam1/{first_chunk}")).content
    with av.open(io.BytesIO(segment)) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="gray")
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-live_start_index", "0", "-headers",
         f"Authorization: Bearer {stack.token}", "-i", f"{stack.base_url}/cameras/byname/cam1/vod.m3u8?start={start!r}",
         "-map", "0:v", "-t", "6", "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    assert len(done.stdout) >= 6 * FPS * picture.size * 0.9
    assert done.stdout[:picture.size] == picture.tobytes(), "playback starts at the range's first chunk"


async def test_windows_cover_a_long_range_and_each_windows_playlist_plays(stack):
    refs = await recorded(stack, 3)
    async with stack.client() as reader:
        answer = await reader.get("/cameras/byname/cam1/vod/windows", params={"start": "1h"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["camera"] == "cam1" and body["window_s"] == 3600 and body["truncated"] is False
        live = body["windows"][-1]
        assert live["chunks"] >= 3 and live["end"] % 3600 == 0 and live["end"] > time.time()  # to the hour's end
        assert live["start"] <= refs[0]["start"] or len(body["windows"]) > 1
        playlist = await reader.get(live["playlist"])
        assert playlist.status_code == 200 and "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist.text
        assert len(segment_lines(playlist.text)) >= live["chunks"]  # and any that landed since

        closed = await reader.get("/cameras/byname/cam1/vod/windows",
                                  params={"start": repr(refs[0]["start"]), "end": repr(refs[2]["end"])})
        [window] = closed.json()["windows"] if refs[0]["start"] // 3600 == refs[2]["end"] // 3600 else [None]
        if window is not None:
            assert (window["start"], window["end"], window["chunks"]) == (refs[0]["start"], refs[2]["end"], 3)
        assert (await reader.get("/cameras/byname/nosuch/vod/windows")).status_code == 404
        empty = await reader.get("/cameras/byname/cam1/vod/windows", params={"start": "2001-01-01T00:00Z",
                                                                             "end": "2001-01-02T00:00Z"})
        assert empty.status_code == 200 and empty.json()["windows"] == []


async def test_bad_input_is_one_line_and_an_empty_range_is_an_empty_playlist(stack):
    async with stack.client() as reader:
        path = "/cameras/byname/cam1/vod.m3u8"
        for params, detail in (
            ({"start": "1000", "end": "900"}, "end must be after start"),
            ({"start": "whenever"}, "start: cannot read 'whenever' as a time"),
            ({"start": "3h", "end": "1h"}, "the range is 7200 s long; one playlist covers at most 3600 s"),
        ):
            refused = await reader.get(path, params=params)
            assert refused.status_code == 422 and refused.json()["detail"].startswith(detail), refused.text
            assert "\n" not in refused.json()["detail"]
        windows = await reader.get("/cameras/byname/cam1/vod/windows", params={"start": "1h", "end": "2h"})
        assert windows.status_code == 422 and windows.json()["detail"] == "end must be after start"
        assert (await reader.get("/cameras/byname/nosuch/vod.m3u8")).status_code == 404
        assert (await reader.get("/cameras/byname/Bad!/vod.m3u8")).status_code == 422

        empty = await reader.get(path, params={"start": "2001-01-01T00:00Z", "end": "2001-01-01T01:00Z"})
    assert empty.status_code == 200
    assert empty.text == ("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
                          "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-ENDLIST\n")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_cpu_of_one_segment_and_one_hour_long_playlist(stack):
    """An hour of 10-second chunks (360, announced on the footage stream for camera `hour`) and a recorded chunk:
    the API's and the indexer's CPU per request, over many requests."""
    hour0 = math.floor(time.time() / 3600) * 3600 - 2 * 86_400
    names = stack.settings.names
    for i in range(360):
        start = hour0 + 10 * i
        key = chunk_key("hour", start, "h1", 150 * i)
        event = Segment(camera="hour", bucket=stack.settings.s3.bucket, key=key, session="h1", first_seq=150 * i,
                        last_seq=150 * i + 149, start=start, end=start + 10, frames=150, bytes=2_500_000,
                        codec="h264", width=1920, height=1080)
        await stack.js.publish(names.footage("hour"), event.encode(), headers={"Nats-Msg-Id": segment_id(
            "hour", "h1", 150 * i)})
    url = f"/cameras/byname/hour/vod.m3u8?start={hour0!r}&end={hour0 + 3600!r}"
    refs = await recorded(stack, 1)
    segment = f"/cameras/byname/cam1/segments/at/1800000/{tail(refs[0]['key'])}"  # half an hour into a playlist
    api, indexer = stack.processes["api"].proc.pid, stack.processes["indexer"].proc.pid
    async with stack.client() as reader:
        async def all_indexed():
            return len(segment_lines((await reader.get(url)).text)) == 360

        await eventually(all_indexed, 60, what="360 chunks of camera hour indexed")
        rounds = 20
        api0, ix0, wall0 = cpu_seconds(api), cpu_seconds(indexer), time.monotonic()
        for _ in range(rounds):
            playlist = await reader.get(url)
            assert playlist.status_code == 200 and playlist.text.count("#EXTINF:10.000000,") == 360
        api1, ix1, wall1 = cpu_seconds(api), cpu_seconds(indexer), time.monotonic()
        size = 0
        for _ in range(rounds):
            answer = await reader.get(segment)
            assert answer.status_code == 200
            size = len(answer.content)
        api2, wall2 = cpu_seconds(api), time.monotonic()
        plain_key = next((k for k in (await reader.get(
            "/cameras/byname/cam1/footage", params={"start": repr(refs[0]["start"] - 7300),
                                                     "end": repr(refs[0]["start"] - 7000)})).json()["chunks"]), None)
        remux_ms = None
        if plain_key is not None:  # the old plain chunk the test above stored: remuxed on every request
            plain_url = f"/cameras/byname/cam1/segments/at/1800000/{tail(plain_key['key'])}"
            api3 = cpu_seconds(api)
            for _ in range(rounds):
                assert (await reader.get(plain_url)).status_code == 200
            remux_ms = (cpu_seconds(api) - api3) / rounds * 1000
    print(f"\nHLS CPU per request over {rounds}: 1-hour playlist (360 chunks, {len(playlist.text)} bytes): API "
          f"{(api1 - api0) / rounds * 1000:.1f} ms, indexer {(ix1 - ix0) / rounds * 1000:.1f} ms, wall "
          f"{(wall1 - wall0) / rounds * 1000:.1f} ms; segment ({size} bytes, fMP4 streamed and moved): API "
          f"{(api2 - api1) / rounds * 1000:.2f} ms, wall {(wall2 - wall1) / rounds * 1000:.2f} ms; old plain chunk "
          f"remuxed: API {remux_ms if remux_ms is None else round(remux_ms, 2)} ms")
