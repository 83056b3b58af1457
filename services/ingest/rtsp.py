"""Spectare's own RTSP client: RTP over the RTSP TCP connection (interleaved), H.264 and H.265, Basic and
Digest authentication, keep-alives, on the event loop with no thread.

Why not FFmpeg's: reading a camera is most of what ingest costs, and FFmpeg's RTSP demuxer reads every
RTP packet with its own system calls and wake-ups (hundreds per second per camera) in a thread of its
own. This client reads the socket at most every `read_interval_s`, taking whatever arrived in one go,
and splits it in Python at about a microsecond per RTP packet: measured here it costs a fraction of
FFmpeg's CPU for the same stream (bench/results/recording.md). What it does not read (a codec other
than H.264/H.265, H.264 interleaved packetization, H.265 with DONL) raises `UnsupportedStream`, and
ingest reads that camera with FFmpeg instead. It hands out each access unit with its RTP timestamp as
pts; decode times (B-frames) are derived by ingest's `reorder.DecodeTimes`, as for FFmpeg's packets.
"""

import asyncio
import base64
import hashlib
import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import unquote, urlsplit, urlunsplit

from spectare.core.redact import redact

from . import sdp
from .failures import OpenFailed, os_error_kind, os_error_text, rtsp_status_kind
from .media import VIDEO_CODECS, AudioInfo, AudioUnits, SourceEnded, SourceInfo
from .paramsets import (
    H264_SPS,
    H265_SPS,
    ParameterSetError,
    annexb,
    geometry,
    nal_type,
    parameter_set_types,
    split_annexb,
    sprop_nals,
)
from .rtp import Depacketizer, InterleavedReader, UnsupportedStream
from .rtpaudio import RtpAudio, UnsupportedAudio, rtp_audio
from .timing import RawPacket

log = logging.getLogger(__name__)

USER_AGENT = "Spectare"
DEFAULT_PORT = 554
DEFAULT_SESSION_TIMEOUT_S = 60
# One read takes at most this much (0.1 s of a 16 Mbit/s camera is 200 KB); a full read is followed by
# the next at once. Read into a buffer kept per connection: a fresh buffer this large would be mapped and
# page-faulted through by malloc on every read.
_RECV_BYTES = 512 * 1024


class RtspError(Exception):
    """An RTSP request was answered with an error status."""

    def __init__(self, method: str, status: int, reason: str) -> None:
        super().__init__(f"{method} answered {status} {reason}")
        self.status = status


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else default


# -- authentication (RFC 2617 as RTSP uses it), pure -------------------------------------------------

@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "digest"
    params: dict[str, str]


def parse_challenges(values: list[str]) -> list[Challenge]:
    """WWW-Authenticate header values -> challenges (one header may not carry several here)."""
    out = []
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        params: dict[str, str] = {}
        for key, val in _auth_params(rest):
            params[key.lower()] = val
        out.append(Challenge(scheme.lower(), params))
    return out


def _auth_params(text: str) -> list[tuple[str, str]]:
    pairs, pos = [], 0
    while pos < len(text):
        eq = text.find("=", pos)
        if eq < 0:
            break
        key = text[pos:eq].strip(" ,")
        pos = eq + 1
        if pos < len(text) and text[pos] == '"':
            end = text.find('"', pos + 1)
            end = len(text) if end < 0 else end
            pairs.append((key, text[pos + 1:end]))
            pos = end + 1
        else:
            end = text.find(",", pos)
            end = len(text) if end < 0 else end
            pairs.append((key, text[pos:end].strip()))
            pos = end
        pos = text.find(",", pos)
        pos = len(text) if pos < 0 else pos + 1
    return pairs


def authorization(challenge: Challenge, user: str, password: str, method: str, uri: str, count: int,
                  cnonce: str) -> str:
    """The Authorization header answering `challenge` for one request."""
    if challenge.scheme == "basic":
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    p = challenge.params
    realm, nonce = p.get("realm", ""), p.get("nonce", "")
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in qops:
        nc = f"{count:08x}"
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{_md5(f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in p:
        fields.append(f'opaque="{p["opaque"]}"')
    if "algorithm" in p:
        fields.append(f"algorithm={p['algorithm']}")
    return "Digest " + ", ".join(fields)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def choose_challenge(challenges: list[Challenge]) -> Challenge | None:
    """Digest (MD5) over Basic: Basic sends the password itself."""
    digest = [c for c in challenges if c.scheme == "digest" and c.params.get("algorithm", "MD5").upper() == "MD5"]
    basic = [c for c in challenges if c.scheme == "basic"]
    preferred = digest or basic
    return preferred[0] if preferred else None


# -- the connection -----------------------------------------------------------------------------------

class _Connection:
    """One RTSP TCP connection: requests with answers, then raw reads once playing."""

    def __init__(self, sock: socket.socket, url: str, shown: str, user: str | None, password: str | None) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.url = url  # without credentials: what requests name
        self.shown = shown  # the camera's URL as logs and errors show it (password masked)
        self.user, self.password = user, password
        self.buffer = b""  # received, not yet consumed
        self.cseq = 0
        self.session = ""
        self.challenge: Challenge | None = None
        self.auth_count = 0
        self.cnonce = os.urandom(8).hex()
        self._receive_buffer = bytearray(_RECV_BYTES)
        self.filled = False  # the last read filled the buffer: more is waiting

    @classmethod
    async def open(cls, url: str, timeout_s: float) -> "_Connection":
        parts = urlsplit(url)
        if not parts.hostname:
            raise OpenFailed(redact(f"cannot open {url}: no host in the URL"), "other")
        plain = urlunsplit((parts.scheme, _netloc(parts.hostname, parts.port), parts.path or "/", parts.query, ""))
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                infos = await loop.getaddrinfo(parts.hostname, parts.port or DEFAULT_PORT, type=socket.SOCK_STREAM)
                family, kind, proto, _, address = infos[0]
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, address)
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError:
            raise OpenFailed(redact(f"cannot open {url}: no answer within {timeout_s:g}s"), "timeout") from None
        except OSError as exc:
            raise OpenFailed(redact(f"cannot open {url}: {os_error_text(exc)}"), os_error_kind(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock, plain, redact(url), user, password)

    def close(self) -> None:
        self.sock.close()

    async def request(self, method: str, url: str, headers: dict[str, str], timeout_s: float) -> Response:
        async with asyncio.timeout(timeout_s):
            response = await self._exchange(method, url, headers)
            if response.status == 401 and self.user is not None and self.challenge is None:
                self.challenge = choose_challenge(parse_challenges(response.headers.get("www-authenticate", [])))
                if self.challenge is not None:
                    response = await self._exchange(method, url, headers)
        if response.status == 401:
            refusal = "refused the credentials" if self.user is not None else "wants credentials"
            raise OpenFailed(f"cannot open {self.shown}: the camera {refusal} (401 Unauthorized)", "unauthorized")
        if not 200 <= response.status < 300:
            raise RtspError(method, response.status, response.reason)
        return response

    def request_bytes(self, method: str, url: str, headers: dict[str, str]) -> bytes:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", f"User-Agent: {USER_AGENT}"]
        if self.session:
            lines.append(f"Session: {self.session}")
        if self.challenge is not None:
            self.auth_count += 1
            lines.append("Authorization: " + authorization(self.challenge, self.user or "", self.password or "",
                                                           method, url, self.auth_count, self.cnonce))
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def recv(self) -> bytes:
        size = await self.loop.sock_recv_into(self.sock, self._receive_buffer)
        if not size:
            raise SourceEnded("the camera closed the connection")
        self.filled = size == _RECV_BYTES
        return bytes(memoryview(self._receive_buffer)[:size])

    async def _exchange(self, method: str, url: str, headers: dict[str, str]) -> Response:
        await self.send(self.request_bytes(method, url, headers))
        while True:
            response = self._take_response()
            if response is not None:
                return response
            self.buffer += await self.recv()

    def _take_response(self) -> Response | None:
        buf = self.buffer
        while buf.startswith(b"$"):  # media before the answer (some servers start early): dropped
            if len(buf) < 4 or len(buf) < 4 + ((buf[2] << 8) | buf[3]):
                return None
            buf = buf[4 + ((buf[2] << 8) | buf[3]):]
        self.buffer = buf
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        lines = buf[:head_end].decode("latin-1").split("\r\n")
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        declared = (headers.get("content-length") or ["0"])[0]
        length = int(declared) if declared.isdigit() else 0
        if len(buf) < head_end + 4 + length:
            return None
        body = buf[head_end + 4:head_end + 4 + length]
        self.buffer = buf[head_end + 4 + length:]
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("RTSP/") or not status_line[1].isdigit():
            raise OpenFailed(f"cannot open {self.shown}: not an RTSP answer: {lines[0][:60]!r}", "other")
        return Response(int(status_line[1]), status_line[2] if len(status_line) > 2 else "", headers, body)


def _netloc(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


# -- the source -----------------------------------------------------------------------------------------

class RtspSource:
    """Open with `await RtspSource.open(...)`, then `await source.next()` per packet (like FFmpeg's)."""

    def __init__(self, conn: _Connection, info: SourceInfo, reader: InterleavedReader, keepalive: tuple[str, float],
                 read_timeout_s: float, read_interval_s: float) -> None:
        self.conn = conn
        self.info = info
        self.reader = reader
        self.keepalive_method, self.keepalive_s = keepalive
        self.read_timeout_s = read_timeout_s
        self.read_interval_s = read_interval_s
        self._ready: deque[RawPacket | AudioUnits] = deque()
        self._audio_garbage_said = False
        self._last_read = 0.0
        self._last_packet = time.monotonic()
        self._last_keepalive = time.monotonic()

    @classmethod
    async def open(cls, url: str, open_timeout_s: float, read_timeout_s: float,
                   read_interval_s: float, audio: bool = True) -> "RtspSource":
        """`audio`: also SETUP the camera's audio track (when it has one this client reads)."""
        conn = await _Connection.open(url, open_timeout_s)
        try:
            return await cls._handshake(conn, open_timeout_s, read_timeout_s, read_interval_s, audio)
        except BaseException:
            conn.close()
            raise

    @classmethod
    async def _handshake(cls, conn: _Connection, open_timeout_s: float, read_timeout_s: float,
                         read_interval_s: float, want_audio: bool) -> "RtspSource":
        url, shown = conn.url, conn.shown
        try:
            options = await conn.request("OPTIONS", url, {}, open_timeout_s)
            public = options.header("public").upper()
            described = await conn.request("DESCRIBE", url, {"Accept": "application/sdp"}, open_timeout_s)
            session = sdp.parse(described.body.decode("utf-8", "replace"))
            base = described.header("content-base") or described.header("content-location") or url
            video = session.first("video")
            if video is None:
                raise OpenFailed(f"cannot open {shown}: it has no video track", "no_video")
            if video.codec not in VIDEO_CODECS:
                raise UnsupportedStream(f"video codec {video.codec}")
            _check_packetization(video)
            setup = await conn.request("SETUP", video.control_url(base),
                                       {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}, open_timeout_s)
            session_header = setup.header("session")
            conn.session = session_header.split(";")[0].strip()
            channel = _interleaved_channel(setup.header("transport"))
            audio_media = session.first("audio") if want_audio else None
            audio, audio_channel, audio_skipped = None, -1, None
            if audio_media is not None:
                try:
                    audio, audio_channel = await _setup_audio(conn, audio_media, base, channel, open_timeout_s)
                except UnsupportedAudio as exc:
                    audio_skipped = str(exc)
            await conn.request("PLAY", session.control_url(base), {"Range": "npt=0.000-"}, open_timeout_s)
        except RtspError as exc:
            raise OpenFailed(f"cannot open {shown}: {exc}", rtsp_status_kind(exc.status)) from None
        except UnicodeError as exc:
            raise OpenFailed(f"cannot open {shown}: {exc}", "other") from None
        except TimeoutError:
            raise OpenFailed(f"cannot open {shown}: no answer within {open_timeout_s:g}s", "timeout") from None
        except OSError as exc:
            raise OpenFailed(f"cannot open {shown}: {os_error_text(exc)}", os_error_kind(exc)) from None
        depacketizer = Depacketizer(video.codec)
        reader = InterleavedReader(channel, depacketizer, video.payload_type)
        if audio is not None and audio_media is not None:
            reader.audio_channel, reader.audio = audio_channel, audio.depacketizer
            reader.audio_payload_type = audio_media.payload_type
        keepalive = ("GET_PARAMETER" if "GET_PARAMETER" in public else "OPTIONS", _keepalive_s(session_header))
        source = cls(conn, SourceInfo(video.codec, 0, 0, Fraction(1, video.clock_rate), b"", None, None),
                     reader, keepalive, read_timeout_s, read_interval_s)
        extradata = _sdp_extradata(video)
        if not extradata:  # parameter sets only in band: wait for them (they come with the first keyframe)
            try:
                async with asyncio.timeout(open_timeout_s):
                    while not all(t in depacketizer.parameter_sets for t in parameter_set_types(video.codec)):
                        await source._read()
            except TimeoutError:
                raise OpenFailed(f"cannot open {shown}: no {video.codec} parameter sets within {open_timeout_s:g}s",
                                 "no_video") from None
            extradata = annexb([depacketizer.parameter_sets[t] for t in parameter_set_types(video.codec)])
        sps_type = H265_SPS if video.codec == "hevc" else H264_SPS
        sps = [nal for nal in split_annexb(extradata) if nal_type(video.codec, nal) == sps_type]
        try:
            shape = geometry(video.codec, sps[0]) if sps else None
        except ParameterSetError as exc:
            raise UnsupportedStream(f"unreadable SPS ({exc})") from None
        if shape is None:
            raise UnsupportedStream("no SPS in the stream's parameter sets")
        audio_info = None
        if audio is not None and audio_media is not None:
            audio_info = AudioInfo(audio.codec, audio.sample_rate, audio.channels, Fraction(1, audio_media.clock_rate),
                                   audio.extradata, shared_timeline=False)
        source.info = SourceInfo(codec=video.codec, width=shape.width, height=shape.height,
                                 time_base=Fraction(1, video.clock_rate), extradata=extradata,
                                 fps=video.framerate or shape.fps, audio=audio_info, audio_skipped=audio_skipped)
        return source

    async def next(self) -> RawPacket | AudioUnits:
        while not self._ready:
            await self._read()
        return self._ready.popleft()

    def losses(self) -> dict[str, int]:
        stats = self.reader.depacketizer.stats
        losses = {"rtp_packets_lost": stats.lost_packets, "nal_units_dropped": stats.dropped_nals}
        if self.reader.audio is not None:
            audio = self.reader.audio.stats
            losses |= {"audio_rtp_packets_lost": audio.lost_packets, "audio_units_dropped": audio.dropped_units,
                       "audio_bad_payloads": audio.bad_payloads, "audio_wrong_payload_type": audio.wrong_payload_type}
        return losses

    async def close(self) -> None:
        try:
            self.conn.sock.send(self.conn.request_bytes("TEARDOWN", self.conn.url, {}))  # best effort, no wait
        except OSError:
            pass
        self.conn.close()

    async def _read(self) -> None:
        """One read of whatever arrived, at most every `read_interval_s`: fewer, larger reads are far cheaper."""
        wait = self._last_read + self.read_interval_s - time.monotonic()
        if wait > 0 and not self.conn.filled:
            await asyncio.sleep(wait)
        if self.conn.buffer:  # left over from the handshake
            data, self.conn.buffer = self.conn.buffer, b""
        else:
            try:
                async with asyncio.timeout(self.read_timeout_s):
                    data = await self.conn.recv()
            except TimeoutError:
                raise SourceEnded(f"no data for {self.read_timeout_s:g}s") from None
            except OSError as exc:
                raise SourceEnded(f"read failed: {exc.strerror or exc}") from None
        now = time.monotonic()
        self._last_read = now
        received = time.time()
        self.reader.feed(data)
        if self.reader.messages:
            self._answers()
        pending = self.reader.depacketizer.pending
        if pending:
            self._last_packet = now
            for unit in pending:  # in decode order; pts only: B-frames' decode times are derived downstream
                self._ready.append(RawPacket(unit.timestamp, None, 0, unit.keyframe, unit.data, received))
            pending.clear()
        elif now - self._last_packet > self.read_timeout_s:
            raise SourceEnded(f"no video for {self.read_timeout_s:g}s")
        if self.reader.audio is not None:
            self._audio(received)
        if now - self._last_keepalive >= self.keepalive_s:
            self._last_keepalive = now
            await self.conn.send(self.conn.request_bytes(self.keepalive_method, self.conn.url, {}))

    def _audio(self, received: float) -> None:
        audio = self.reader.audio
        assert audio is not None
        for run in audio.pending:
            self._ready.append(AudioUnits(run.timestamp, run.duration, tuple(run.units), received))
        audio.pending.clear()
        stats = audio.stats
        if (stats.bad_payloads or stats.wrong_payload_type) and not self._audio_garbage_said:
            self._audio_garbage_said = True  # once per session; the counters say how many
            log.warning("%s: dropping unreadable audio packets (%d bad payloads, %d of another payload type so far); "
                        "the video is not affected", self.conn.shown, stats.bad_payloads, stats.wrong_payload_type)

    def _answers(self) -> None:
        for message in self.reader.messages:
            status = message.split(b"\r\n", 1)[0].split(b" ")
            if message.startswith(b"RTSP/") and len(status) > 1 and status[1] in (b"454", b"401"):
                raise SourceEnded(f"the camera ended the session ({status[1].decode()} to a keep-alive)")
        self.reader.messages.clear()


async def _setup_audio(conn: _Connection, media: sdp.Media, base: str, video_channel: int,
                       timeout_s: float) -> tuple[RtpAudio, int]:
    """SETUP the audio track on its own interleaved channels; UnsupportedAudio when it cannot be recorded (the
    video is recorded all the same)."""
    audio = rtp_audio(media)
    wanted = video_channel + 2
    try:
        setup = await conn.request("SETUP", media.control_url(base),
                                   {"Transport": f"RTP/AVP/TCP;unicast;interleaved={wanted}-{wanted + 1}"}, timeout_s)
        channel = _interleaved_channel(setup.header("transport"))
    except RtspError as exc:
        raise UnsupportedAudio(f"the camera refused to SETUP its audio track ({exc})") from None
    except UnsupportedStream as exc:
        raise UnsupportedAudio(str(exc)) from None
    if channel in (video_channel, video_channel + 1):
        raise UnsupportedAudio("the camera put its audio on the video's interleaved channel")
    return audio, channel


def _check_packetization(video: sdp.Media) -> None:
    if video.codec == "h264" and video.fmtp.get("packetization-mode", "0") not in ("0", "1"):
        raise UnsupportedStream("H.264 interleaved packetization (mode 2)")
    if video.codec == "hevc" and video.fmtp.get("sprop-max-don-diff", "0") not in ("", "0"):
        raise UnsupportedStream("H.265 with decoding order numbers (sprop-max-don-diff > 0)")


def _interleaved_channel(transport: str) -> int:
    for part in transport.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "interleaved":
            first = value.split("-")[0]
            if first.isdigit():
                return int(first)
    if "TCP" not in transport.upper():
        raise UnsupportedStream("the camera would not send RTP over the RTSP connection (TCP)")
    return 0


def _keepalive_s(session_header: str) -> float:
    for part in session_header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "timeout" and value.strip().isdigit() and int(value) > 0:
            return max(int(value) / 2, 1.0)
    return DEFAULT_SESSION_TIMEOUT_S / 2


def _sdp_extradata(video: sdp.Media) -> bytes:
    try:
        if video.codec == "hevc":
            nals = sprop_nals([video.fmtp.get(k, "") for k in ("sprop-vps", "sprop-sps", "sprop-pps")])
        else:
            nals = sprop_nals([video.fmtp.get("sprop-parameter-sets", "")])
    except ParameterSetError as exc:
        log.info("ignoring the SDP's parameter sets (%s); waiting for them in the stream", exc)
        return b""
    wanted = parameter_set_types(video.codec)
    if not all(any(nal_type(video.codec, n) == t for n in nals) for t in wanted):
        return b""
    return annexb(nals)

