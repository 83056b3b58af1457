"""A scripted RTSP camera on 127.0.0.1 for what the GStreamer test camera does not serve: H.265, B-frames
(reordered timestamps), Digest authentication, parameter sets only in band, and an audio track it really sends
(`audio="pcmu"`: G.711 8 kHz; `audio="aac"`: AAC-hbr 16 kHz), optionally with garbage among its packets.

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
from .rtp_packets import aac_hbr, interleave, nals_of, packetize, tone

VIDEO_CLOCK = 90000
AUDIO_RATES = {"pcmu": 8000, "aac": 16000}
AUDIO_TS0 = 0xFFFF0000  # the audio RTP clock starts anywhere (here: just before it wraps)
G711_PACKET = 160  # samples: 20 ms


class ScriptedRtspCamera:
    def __init__(self, codec: str, units: list[bytes], fps: float, *, digest: tuple[str, str] | None = None,
                 sprop: bool = True, offsets: list[int] | None = None, audio: str | None = None,
                 audio_garbage: bool = False) -> None:
        self.codec, self.units, self.fps = codec, units, fps
        self.digest = digest
        self.sprop = sprop
        self.offsets = offsets  # presentation timestamps (90 kHz) per unit, when not in order
        self.audio = audio
        # every 7th audio packet goes with another payload type, every 11th (AAC) with its AU header cut short
        self.audio_garbage = audio_garbage
        self.audio_units, self.asc = tone("aac" if audio == "aac" else "pcm_mulaw", AUDIO_RATES.get(audio or "", 8000),
                                          4.0) if audio else ([], b"")
        self.audio_channel: int | None = None
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
                    asked = headers.get("transport", "").partition("interleaved=")[2].split(";")[0] or "0-1"
                    if uri.endswith("trackID=1"):
                        self.audio_channel = int(asked.split("-")[0])
                    writer.write(self._answer(cseq, "200 OK", [f"Transport: RTP/AVP/TCP;unicast;interleaved={asked}",
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
        if self.audio == "aac":
            audio = ("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\na=fmtp:97 streamtype=5; "
                     f"profile-level-id=15; mode=AAC-hbr; config={self.asc.hex()}; sizelength=13; indexlength=3; "
                     "indexdeltalength=3\r\n")
        else:
            audio = "m=audio 0 RTP/AVP 0\r\n" + ("a=rtpmap:0 PCMU/8000\r\n" if self.audio else "")
        return (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=scripted\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
                f"a=rtpmap:96 {name}/{VIDEO_CLOCK}\r\n{fmtp}a=control:trackID=0\r\n"
                f"{audio}a=control:trackID=1\r\n")

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        step = round(VIDEO_CLOCK / self.fps)
        loop_span = step * len(self.units)
        seq, lap = 0, 0
        audio = _AudioPackets(self)
        sent = 0  # video frames sent
        while True:
            offsets = [lap * loop_span + (o if self.offsets else i * step)
                       for i, o in enumerate(self.offsets or [0] * len(self.units))]
            for i, unit in enumerate(self.units):
                packets = packetize(self.codec, [unit], 1400, True, ts0=offsets[i], seq0=seq, offsets=[0])
                seq += len(packets)
                writer.write(interleave(packets))
                sent += 1
                if self.audio and self.audio_channel is not None:  # the audio up to the next frame's time
                    rate = AUDIO_RATES[self.audio]
                    while audio.peek * self.fps < sent * rate:
                        writer.write(next(audio))
                await writer.drain()
                await asyncio.sleep(1 / self.fps)
            lap += 1


class _AudioPackets:
    """The scripted camera's audio RTP packets, endless, as interleaved frames; `peek` is the next one's sample."""

    def __init__(self, camera: ScriptedRtspCamera) -> None:
        self.camera = camera
        self.peek = 0  # samples from the start of the stream
        self.seq = 0
        self.count = 0
        self.unit = 0

    def __iter__(self) -> "_AudioPackets":
        return self

    def __next__(self) -> bytes:
        camera = self.camera
        assert camera.audio_channel is not None
        ts = (AUDIO_TS0 + self.peek) & 0xFFFFFFFF
        self.count += 1
        if camera.audio == "aac":
            unit = camera.audio_units[self.unit % len(camera.audio_units)]
            self.unit += 1
            payloads, samples, payload_type = aac_hbr([unit]), 1024, 97
            if camera.audio_garbage and self.count % 11 == 0:
                payloads = [(b"\x00\x10\x01", True)]  # claims a 16-bit AU header, holds 8 bits
        else:
            tone_bytes = camera.audio_units[0]
            at = self.peek % (len(tone_bytes) - G711_PACKET)
            payloads, samples, payload_type = [(tone_bytes[at:at + G711_PACKET], True)], G711_PACKET, 0
        if camera.audio_garbage and self.count % 7 == 0:
            payload_type = 96  # the video's payload type on the audio channel
        frames = []
        for payload, marker in payloads:
            frames.append(interleave([(payload, ts, marker, self.seq & 0xFFFF)], payload_type, camera.audio_channel))
            self.seq += 1
        self.peek += samples
        return b"".join(frames)


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



def hevc_units(folder: Path, bframes: bool = True) -> tuple[list[bytes], list[int]]:
    """Access units (decode order) and their presentation times (90 kHz) of a real x265 stream, 320x180 at 30 fps,
    an IDR a second (closed GOP): x265's default hierarchical B-frames (4, pyramid), or `bframes=False` none."""
    clip = folder / f"hevc-b{int(bframes)}.ts"
    params = "log-level=error:keyint=30:min-keyint=30:scenecut=0:open-gop=0" + ("" if bframes else ":bframes=0")
    subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source_video()), "-frames:v", "60",
                    "-vf", "scale=320:180", "-r", "30", "-c:v", "libx265", "-x265-params", params, "-an", str(clip)],
                   check=True, timeout=120)
    with av.open(str(clip)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    if bframes != any(p.pts != p.dts for p in packets):
        raise AssertionError(f"the encoder made {'no ' if bframes else ''}B-frames")
    return [bytes(p) for p in packets], [round((p.pts - packets[0].pts) * p.time_base * VIDEO_CLOCK) for p in packets]
