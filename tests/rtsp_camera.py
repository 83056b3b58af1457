"""A scripted RTSP camera on 127.0.0.1 for what the GStreamer test camera does not serve: H.265, B-frames
(reordered timestamps), Digest authentication, parameter sets only in band.

It speaks RTSP 1.0 (OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN) and sends the given access
units over RTP interleaved on the connection, in real time, looping, packetized by `rtp_packets`.
"""

import asyncio
import base64
import hashlib
import os
import subprocess
from pathlib import Path

import av

from spectare.local.testcam import _ffmpeg

from .media import source_video
from .rtp_packets import interleave, nals_of, packetize

VIDEO_CLOCK = 90000


class ScriptedRtspCamera:
    def __init__(self, codec: str, units: list[bytes], fps: float, *, digest: tuple[str, str] | None = None,
                 sprop: bool = True, offsets: list[int] | None = None) -> None:
        self.codec, self.units, self.fps = codec, units, fps
        self.digest = digest
        self.sprop = sprop
        self.offsets = offsets  # presentation timestamps (90 kHz) per unit, when not in order
        self.nonce = os.urandom(8).hex()
        self.requests: list[str] = []  # method per request received
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> "ScriptedRtspCamera":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.server.close()

    def url(self, credentials: str = "") -> str:
        return f"rtsp://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}/stream"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sending: asyncio.Task | None = None
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                method, uri = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                self.requests.append(method)
                cseq = headers.get("cseq", "0")
                if self.digest and not self._authorized(method, headers.get("authorization", "")):
                    writer.write(self._answer(cseq, "401 Unauthorized", [
                        f'WWW-Authenticate: Digest realm="scripted", nonce="{self.nonce}", qop="auth"']))
                    continue
                if method == "DESCRIBE":
                    body = self._sdp().encode()
                    writer.write(self._answer(cseq, "200 OK", [f"Content-Base: {uri}/", "Content-Type: application/sdp",
                                                             f"Content-Length: {len(body)}"]) + body)
                elif method == "SETUP":
                    writer.write(self._answer(cseq, "200 OK", ["Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
                                                             "Session: 5150;timeout=4"]))
                elif method == "PLAY":
                    writer.write(self._answer(cseq, "200 OK", ["Session: 5150"]))
                    sending = asyncio.create_task(self._send(writer))
                elif method == "OPTIONS":
                    writer.write(self._answer(cseq, "200 OK", [
                        "Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"]))
                else:
                    writer.write(self._answer(cseq, "200 OK", []))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if sending is not None:
                sending.cancel()
            writer.close()

    def _answer(self, cseq: str, status: str, headers: list[str]) -> bytes:
        return ("\r\n".join([f"RTSP/1.0 {status}", f"CSeq: {cseq}", *headers]) + "\r\n\r\n").encode()

    def _authorized(self, method: str, header: str) -> bool:
        if not header.startswith("Digest "):
            return False
        fields = {}
        for part in header[7:].split(","):
            key, _, value = part.strip().partition("=")
            fields[key] = value.strip('"')
        user, password = self.digest
        ha1 = hashlib.md5(f"{user}:scripted:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{fields.get('uri')}".encode()).hexdigest()
        expected = hashlib.md5(f"{ha1}:{self.nonce}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}".encode())
        return fields.get("username") == user and fields.get("response") == expected.hexdigest()

    def _sdp(self) -> str:
        name = "H265" if self.codec == "hevc" else "H264"
        sets = [n for n in nals_of(self.units[0]) if is_parameter_set(self.codec, n)]
        fmtp = ""
        if self.sprop and self.codec == "hevc":
            b64 = {(n[0] >> 1) & 0x3F: base64.b64encode(n).decode() for n in sets}
            fmtp = f"a=fmtp:96 sprop-vps={b64[32]}; sprop-sps={b64[33]}; sprop-pps={b64[34]}\r\n"
        elif self.sprop:
            fmtp = ("a=fmtp:96 packetization-mode=1; sprop-parameter-sets="
                    + ",".join(base64.b64encode(n).decode() for n in sets) + "\r\n")
        return (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=scripted\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
                f"a=rtpmap:96 {name}/{VIDEO_CLOCK}\r\n{fmtp}a=control:trackID=0\r\n"
                f"m=audio 0 RTP/AVP 0\r\na=control:trackID=1\r\n")

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        step = round(VIDEO_CLOCK / self.fps)
        loop_span = step * len(self.units)
        seq, lap = 0, 0
        while True:
            offsets = [lap * loop_span + (o if self.offsets else i * step)
                       for i, o in enumerate(self.offsets or [0] * len(self.units))]
            for i, unit in enumerate(self.units):
                packets = packetize(self.codec, [unit], 1400, True, ts0=offsets[i], seq0=seq, offsets=[0])
                seq += len(packets)
                writer.write(interleave(packets))
                await writer.drain()
                await asyncio.sleep(1 / self.fps)
            lap += 1


def is_parameter_set(codec: str, nal: bytes) -> bool:
    return (nal[0] >> 1) & 0x3F in (32, 33, 34) if codec == "hevc" else nal[0] & 0x1F in (7, 8)


async def b_frame_camera(folder: Path) -> ScriptedRtspCamera:
    """A started H.264 camera whose stream has B-frames: RTP timestamps out of order, as such cameras send."""
    clip = folder / "bframes.ts"  # MPEG-TS: Annex-B access units with decode and presentation times
    subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source_video()), "-frames:v", "24",
                    "-vf", "scale=320:180", "-c:v", "libx264", "-bf", "2", "-g", "12", "-an", str(clip)],
                   check=True, timeout=120)
    with av.open(str(clip)) as container:  # decode order, with each frame's presentation time
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    if not any(p.pts != p.dts for p in packets):
        raise AssertionError("the encoder made no B-frames")
    pts = [round((p.pts - packets[0].pts) * p.time_base * VIDEO_CLOCK) for p in packets]
    return await ScriptedRtspCamera("h264", [bytes(p) for p in packets], 30, offsets=pts).start()
