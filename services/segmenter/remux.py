"""One chunk plan -> one fragmented MP4 in memory, without transcoding (PyAV).

The chunk is a standalone file in the CMAF layout (`spectare.media.fmp4`): `ftyp`, a `moov` without samples, then
one `moof`+`mdat` fragment per GOP (FFmpeg's `frag_keyframe`), so players open it as a file and HLS/MSE take it as
an init part and media segments. Each sample's duration is in its fragment, so the chunk still spans exactly its
wall time.

The output video stream is built from a template (DESIGN section 5): a stream opened from an
in-memory raw Annex-B "file" made of the session's extradata and the chunk's first keyframe, not
`add_stream('h264')` (which would open an encoder). Packet data arrives Annex-B as RTSP gives it;
the MP4 muxer turns it into length-prefixed samples and the extradata into avcC/hvcC. Timestamps are
rebased so the first frame is at 0, durations come from the next frame (the last one's from the
chunk's end), and `+bitexact` keeps the muxer from writing anything that varies, so the same plan
always gives the same bytes. Opening the template decodes the keyframe (~10 ms at 1080p), so a
`Remuxer` keeps the last session's template; muxing itself costs ~2.4 ms of CPU per 10 s of 1080p15
(`python -m bench remux`).

AAC audio is muxed the same way (its template is opened from one ADTS-framed packet); other audio
codecs are left out of the MP4 and counted. Audio is placed on the video's presentation timeline: a B-frame chunk
shows its first frame after the reorder delay (its first pts), and the audio of that instant goes there too, or it
would play that much ahead of the picture. A fragmented MP4's moov is written before any sample, so it has no
edit list to say that audio starts after the first frame: the mp4 muxer moves the first audio frame to 0 and
lengthens it by as much (that frame early; every later one at its time).
"""

import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from operator import itemgetter
from typing import TypeGuard

import av

from spectare.media.fmp4 import FRAGMENTED_MP4_OPTIONS
from spectare.schemas import AccessUnit, Packet

from .chunker import ChunkPlan

# Codecs whose raw Annex-B elementary stream FFmpeg can open as a "file" (demuxer name).
RAW_VIDEO_FORMATS = {"h264": "h264", "hevc": "hevc", "h265": "hevc"}
_PROBE_OPTIONS = {"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0"}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


class RemuxError(Exception):
    """The packets of a chunk cannot be put into an MP4 (unsupported codec, unreadable keyframe)."""


@dataclass(frozen=True)
class Remuxed:
    data: bytes
    frames: int
    audio_packets: int  # audio frames (AAC access units) muxed
    audio_dropped: int  # audio frames left out (codec not muxable, or before the first frame)


class Remuxer:
    """Builds chunks for one camera; keeps the current session's stream templates between chunks.

    `container_options` are the MP4 muxer's: chunks are stored with the default (fragmented); the tests and the
    remux benchmark also make plain MP4 chunks as they were stored before (`{"fflags": "+bitexact"}`)."""

    def __init__(self, container_options: Mapping[str, str] = FRAGMENTED_MP4_OPTIONS) -> None:
        self._container_options = dict(container_options)
        self._lock = threading.Lock()  # remux runs in worker threads; one chunk at a time per camera
        self._key: tuple | None = None
        self._sources: list[av.container.InputContainer] = []
        self._video_template: av.stream.Stream | None = None
        self._audio_template: av.stream.Stream | None = None

    def close(self) -> None:
        with self._lock:
            self._drop_templates()

    def remux(self, plan: ChunkPlan) -> Remuxed:
        with self._lock:
            return self._remux(plan)

    # -- internals ------------------------------------------------------------------------------

    def _drop_templates(self) -> None:
        for source in self._sources:
            source.close()
        self._sources, self._video_template, self._audio_template, self._key = [], None, None, None

    def _templates(self, plan: ChunkPlan) -> tuple[av.stream.Stream, av.stream.Stream | None]:
        info = plan.info
        key = (info.session, info.video.codec, info.video.extradata, info.audio)
        if key != self._key or self._video_template is None:
            self._drop_templates()
            self._video_template = self._open_video_template(plan)
            self._audio_template = self._open_audio_template(plan)
            self._key = key
        return self._video_template, self._audio_template

    def _open_video_template(self, plan: ChunkPlan) -> av.stream.Stream:
        video = plan.info.video
        raw_format = RAW_VIDEO_FORMATS.get(video.codec)
        if raw_format is None:
            raise RemuxError(f"video codec {video.codec!r} is not supported (supported: h264, hevc)")
        keyframe = plan.packets[0]
        try:
            source = av.open(io.BytesIO(video.extradata + keyframe.data), "r", format=raw_format,
                             options=_PROBE_OPTIONS)
        except (av.FFmpegError, ValueError) as exc:
            raise RemuxError(f"cannot read the chunk's first keyframe as {raw_format}: {exc}") from None
        self._sources.append(source)
        if not source.streams.video:
            raise RemuxError(f"the chunk's first keyframe holds no {raw_format} video")
        return source.streams.video[0]

    def _open_audio_template(self, plan: ChunkPlan) -> av.stream.Stream | None:
        audio = plan.info.audio
        first = next((p for p in plan.packets if p.track == "audio"), None)
        if audio is None or audio.codec != "aac" or first is None:
            return None
        unit = first.access_units(float(Fraction(*audio.time_base)))[0].data
        adts = _adts_header(audio.extradata, len(unit))
        if adts is None:
            return None
        try:
            source = av.open(io.BytesIO(adts + unit), "r", format="aac", options=_PROBE_OPTIONS)
        except (av.FFmpegError, ValueError):
            return None
        self._sources.append(source)
        return source.streams.audio[0] if source.streams.audio else None

    def _remux(self, plan: ChunkPlan) -> Remuxed:
        info = plan.info
        video_template, audio_template = self._templates(plan)
        video = [p for p in plan.packets if p.track == "video"]
        audio = [p for p in plan.packets if p.track == "audio"]
        vtb = Fraction(*info.video.time_base)
        out = io.BytesIO()
        try:
            container = av.open(out, "w", format="mp4", container_options=self._container_options)
        except av.FFmpegError as exc:  # pragma: no cover - FFmpeg built without the mp4 muxer
            raise RemuxError(f"cannot open an MP4 muxer: {exc}") from None
        try:
            vstream = container.add_stream_from_template(video_template)
            vstream.time_base = vtb
            if info.video.extradata:
                vstream.codec_context.extradata = info.video.extradata
            astream, units = None, []
            if audio_template is not None and info.audio is not None:
                astream = container.add_stream_from_template(audio_template)
                atb = Fraction(*info.audio.time_base)
                astream.time_base = atb
                astream.codec_context.extradata = info.audio.extradata
                units = [u for p in audio for u in p.access_units(float(atb))]
            muxed = _video_packets(video, plan, vtb, vstream)
            shown_at = float(muxed[0][1].pts * vtb) if muxed and muxed[0][1].pts else 0.0  # the keyframe's
            audio_muxed = _audio_packets(units, plan, atb, astream, shown_at) if astream is not None else []
            # The muxer interleaves by time; hand it packets in time order (then video first) so it need not buffer
            # much, in one call: PyAV loops over a list without a Python call per packet (~50 audio units a second).
            container.mux([packet for _, packet in sorted(muxed + audio_muxed, key=itemgetter(0))])
            container.close()
        except av.FFmpegError as exc:
            container.close()
            raise RemuxError(f"muxing failed: {exc}") from None
        left_out = len(units) - len(audio_muxed) if astream is not None else sum(max(len(p.sizes), 1) for p in audio)
        return Remuxed(out.getvalue(), len(video), len(audio_muxed), left_out)


def _ticks(seconds: float, tb: Fraction) -> int:
    if tb.numerator == 1:  # the usual 1/rate: plain float maths (called for every audio unit, ~50 a second)
        return round(seconds * tb.denominator)
    return round(Fraction(seconds) / tb)


# A packet ready to mux with its decode time in seconds (times from the plan, not read back from the av.Packet:
# PyAV gives its time base as a new Fraction on every read).
Timed = tuple[float, av.Packet]


def _video_packets(video: list[Packet], plan: ChunkPlan, tb: Fraction, stream: av.stream.Stream) -> list[Timed]:
    presented = [p.pts for p in video]
    # Decode times; each packet's presentation offset from it (B-frames) is kept.
    if _all_timed(presented):
        decoded = [p.dts if p.dts is not None else pts for p, pts in zip(video, presented, strict=True)]
        origin = decoded[0]
        dts = [t - origin for t in decoded]
        pts = [t - origin for t in presented]
    else:  # a packet without pts (the first of an RTSP session can be one): place frames by wall time
        dts = pts = [_ticks(p.wall_time - plan.start, tb) for p in video]
    out, seconds = [], float(tb)
    for i, p in enumerate(video):
        if i + 1 < len(video):
            duration = dts[i + 1] - dts[i]
        else:  # the chunk's samples together last from its start to its end (B-frames: the last decoded frame
            # need not be the last shown, so not from this frame's own time)
            duration = _ticks(plan.end - plan.start, tb) - dts[i]
            if duration <= 0:
                duration = p.duration or (dts[i] - dts[i - 1] if i else 0)
        out.append((dts[i] * seconds, _av_packet(p.data, pts[i], dts[i], max(duration, 0), tb, p.keyframe, stream)))
    return out


def _all_timed(times: list[int | None]) -> TypeGuard[list[int]]:
    return None not in times


def _audio_packets(audio: list[AccessUnit], plan: ChunkPlan, tb: Fraction, stream: av.stream.Stream,
                   shown_at: float) -> list[Timed]:
    """`shown_at`: the chunk's time (seconds) at which its first frame, at wall time `plan.start`, is shown."""
    origin = plan.start - shown_at  # the wall time at the chunk's time 0
    first = _ticks(shown_at, tb)
    out, last_dts, seconds = [], -1, float(tb)
    for i, p in enumerate(audio):
        dts = _ticks(p.wall_time - origin, tb)
        if dts < first or dts <= last_dts:
            continue  # before the chunk's first frame, or not after the previous audio packet
        duration = p.duration
        if not duration and i + 1 < len(audio):
            duration = max(_ticks(audio[i + 1].wall_time - origin, tb) - dts, 0)
        out.append((dts * seconds, _av_packet(p.data, dts, dts, duration, tb, True, stream)))
        last_dts = dts
    return out


def _av_packet(data: bytes, pts: int, dts: int, duration: int, tb: Fraction, key: bool,
               stream: av.stream.Stream) -> av.Packet:
    packet = av.Packet(data)
    packet.pts, packet.dts, packet.duration, packet.time_base = pts, dts, duration, tb
    packet.is_keyframe = key
    packet.stream = stream
    return packet


def _adts_header(asc: bytes, payload_len: int) -> bytes | None:
    """The 7-byte ADTS header for one raw AAC frame described by an AudioSpecificConfig."""
    if len(asc) < 2:
        return None
    object_type = asc[0] >> 3
    rate_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7)
    channels = (asc[1] >> 3) & 0x0F
    if not 1 <= object_type <= 4 or rate_index >= len(_AAC_RATES) or channels == 0:
        return None
    n = payload_len + 7
    return bytes([
        0xFF, 0xF1,
        ((object_type - 1) << 6) | (rate_index << 2) | (channels >> 2),
        ((channels & 0x03) << 6) | (n >> 11),
        (n >> 3) & 0xFF,
        ((n & 0x07) << 5) | 0x1F,
        0xFC,
    ])
