"""A live-view client for tests and the live benchmark: what a browser's player does with the WebSocket, without one.

It keeps every message with the time it arrived, reads the timescale from the init segment and each fragment's
samples from its `moof`, so a test can check keyframes and timestamps and a benchmark can compute each frame's
latency (arrival - capture, the capture time being the stream's `wall_time` + the frame's media time).
"""

import asyncio
import contextlib
import io
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av
import websockets

from spectare.media.fmp4 import boxes, children

KEY_SAMPLE_FLAGS = 0x02000000


@dataclass(frozen=True)
class Sample:
    decode: int  # in the timescale
    presented: int
    keyframe: bool


VIDEO_TRACK, AUDIO_TRACK = 1, 2  # the track ids of the live init segment


def timescale(init: bytes, track: int = VIDEO_TRACK) -> int:
    """A track's timescale (`mdhd`) of an init segment (tracks are numbered from 1 in `moov` order)."""
    moov = next(b for b in boxes(init) if b.type == "moov")
    trak = [b for b in children(init, moov) if b.type == "trak"][track - 1]
    mdia = next(b for b in children(init, trak) if b.type == "mdia")
    mdhd = next(b for b in children(init, mdia) if b.type == "mdhd")
    at = mdhd.body.start + 4 + (16 if init[mdhd.body.start] == 1 else 8)
    return int.from_bytes(init[at:at + 4], "big")


def samples(fragment: bytes, track: int = VIDEO_TRACK) -> list[Sample]:
    """One track's samples of a `moof`+`mdat` as the live endpoint writes them (a `traf` per track present, each a
    `tfdt` and one full `trun`); none when the fragment has no `traf` of that track."""
    moof = next(b for b in boxes(fragment) if b.type == "moof")
    for traf in (b for b in children(fragment, moof) if b.type == "traf"):
        parts = {b.type: b for b in children(fragment, traf)}
        tfhd = parts["tfhd"].body.start
        if int.from_bytes(fragment[tfhd + 4:tfhd + 8], "big") == track:
            break
    else:
        return []
    tfdt, trun = parts["tfdt"], parts["trun"]
    base = (int.from_bytes(fragment[tfdt.body.start + 4:tfdt.body.start + 12], "big")
            if fragment[tfdt.body.start] == 1 else int.from_bytes(fragment[tfdt.body.start + 4:tfdt.body.start + 8],
                                                                  "big"))
    flags = int.from_bytes(fragment[trun.body.start + 1:trun.body.start + 4], "big")
    assert flags == 0x000F01, f"unexpected trun flags {flags:#x}"
    count = int.from_bytes(fragment[trun.body.start + 4:trun.body.start + 8], "big")
    out, at, dts = [], trun.body.start + 12, base
    for _ in range(count):
        duration, _size, sample_flags, offset = struct.unpack(">IIIi", fragment[at:at + 16])
        out.append(Sample(dts, dts + offset, sample_flags == KEY_SAMPLE_FLAGS))
        dts += duration
        at += 16
    return out


@dataclass
class Received:
    """Everything one viewer got, in order: (arrival time, JSON message or bytes)."""

    messages: list[tuple[float, dict | bytes]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def texts(self, kind: str | None = None) -> list[dict]:
        return [m for _, m in self.messages if isinstance(m, dict) and (kind is None or m["type"] == kind)]

    def fragments(self) -> list[tuple[float, bytes]]:
        return [(t, m) for t, m in self.messages if isinstance(m, bytes) and boxes(m)[0].type == "moof"]

    def streams(self) -> list[tuple[dict, bytes, list[tuple[float, bytes]]]]:
        """Per `stream` message: it, its init segment, and the fragments that followed it."""
        out: list[tuple[dict, bytes, list[tuple[float, bytes]]]] = []
        expect_init = False
        for t, message in self.messages:
            if isinstance(message, dict):
                if message["type"] == "stream":
                    out.append((message, b"", []))
                    expect_init = True
            elif expect_init:
                out[-1] = (out[-1][0], message, [])
                expect_init = False
            elif out:
                out[-1][2].append((t, message))
        return out

    def latencies(self) -> list[float]:
        """Seconds from each frame's capture to the arrival of its fragment."""
        out = []
        for stream, init, fragments in self.streams():
            scale = timescale(init)
            for arrived, data in fragments:
                out += [arrived - (stream["wall_time"] + s.presented / scale) for s in samples(data)]
        return out


def decode(init: bytes, fragments: list[bytes]) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(init + b"".join(fragments))) as container:
        return list(container.decode(video=0))


async def watch(url: str, seconds: float, token: str | None = None, stop_after: int | None = None,
                read_delay_s: float = 0.0, rcvbuf: int | None = None,
                slow_until: Callable[[], Awaitable[bool]] | None = None,
                until: Callable[[Received], bool] | None = None, **headers: str) -> Received:
    """Watch for `seconds` (or until `stop_after` messages, `until(received)`, or the server closes): everything
    received. `read_delay_s` makes a slow reader, until `slow_until()` says so when given (asked after each message);
    `rcvbuf` shrinks the socket's receive buffer (a loopback socket otherwise takes megabytes before the server
    notices anything)."""
    got = Received()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    sock = None
    if rcvbuf:
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.connect((host, int(port)))
    deadline = time.monotonic() + seconds
    async with websockets.connect(url, additional_headers=headers, open_timeout=10, max_size=None, sock=sock,
                                  max_queue=1 if read_delay_s else 16) as ws:
        try:
            slow = bool(read_delay_s)
            while (left := deadline - time.monotonic()) > 0 and (stop_after is None or len(got.messages) < stop_after):
                try:
                    message = await asyncio.wait_for(ws.recv(), left)
                except TimeoutError:
                    break
                got.messages.append((time.time(), json.loads(message) if isinstance(message, str) else message))
                if until is not None and until(got):
                    break
                if slow and slow_until is not None and await slow_until():
                    slow = False
                if slow:
                    await asyncio.sleep(read_delay_s)
        except websockets.ConnectionClosed:
            pass
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)
        got.close_code, got.close_reason = ws.close_code, ws.close_reason or ""
    return got


async def closed_with(url: str, token: str | None = None, timeout: float = 30, **headers: str) -> tuple[int, str]:
    """(close code, reason) of a socket the server closes; fails if it sends media first or does not close."""
    got = await watch(url, timeout, token, **headers)
    assert not [m for _, m in got.messages if isinstance(m, bytes)], "the server sent media before closing"
    assert got.close_code is not None
    return got.close_code, got.close_reason
