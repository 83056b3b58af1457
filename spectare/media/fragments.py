"""Live fragments: one camera session's packets as a fragmented MP4 stream a browser's MediaSource plays, remuxed,
never transcoded, plus the RFC 6381 codec string (`avc1.64001f`, `hvc1.1.6.L93.90`) its `addSourceBuffer` needs.

A `LiveMuxer` is built per session from the StreamInfo and the session's first keyframe: its `init` is `ftyp`+`moov`
(PyAV writes it: the `avcC`/`hvcC` from the parameter sets, sample entry `avc1` or `hvc1`), and `fragment(packets)`
gives one `moof`+`mdat` holding those packets, whole frames in decode order, addressed from the `moof`
(`default-base-is-moof`, one `trun` with each sample's duration, size, flags and composition offset).

Why the fragments are written here and not by PyAV: with `movflags=frag_every_frame` the MP4 muxer writes a frame's
fragment only when the next frame is muxed (it is flushed by the next packet), and PyAV does not expose the
`av_write_frame(NULL)` that would flush it. A live viewer would then wait for the frame after the last one of every
packet group: up to one group (`[ingest] group_max_s`) more. A `moof` for one video track is ~60 bytes of fixed
layout, so the muxer writes it itself, a whole group at a time, in microseconds and without PyAV on the event loop.

Times: decode time 0 of a muxer's timeline is its first packet's decode time; `wall_time` is the Unix time of that
instant (the packets' wall time is the session anchor advanced by pts), so a frame presented at media time t was
captured at `wall_time + t`. Video only: audio is not recorded yet.
"""

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av

from spectare.core.errors import SpectareError
from spectare.schemas import Packet, StreamInfo

from .fmp4 import Box, boxes, children

# Raw elementary-stream demuxers the init's template is opened with, by StreamInfo codec name.
RAW_FORMATS = {"h264": "h264", "hevc": "hevc"}
_PROBE_OPTIONS = {"probesize": "32", "analyzeduration": "0", "fpsprobesize": "0"}
# ftyp+moov only, nothing flushed by itself; `+bitexact` so the same session always gives the same init bytes.
_INIT_OPTIONS = {"movflags": "empty_moov+default_base_moof+frag_custom", "fflags": "+bitexact"}
H264_SPS, H265_SPS = 7, 33
_KEY_SAMPLE, _DELTA_SAMPLE = 0x02000000, 0x01010000  # sample_depends_on=2 / depends_on=1 + is_non_sync_sample
_TFHD_BASE_IS_MOOF = 0x020000
_TRUN_FIELDS = 0x000F01  # data offset, then per sample: duration, size, flags, composition time offset


class LiveMuxError(SpectareError):
    """Packets that cannot be made into fragments: an unsupported codec, no parameter sets, an unreadable keyframe."""


@dataclass(frozen=True)
class Fragment:
    """One `moof`+`mdat` of a session: `frames` whole frames from `first_seq`; `keyframe` when it starts with one (a
    viewer may start there)."""

    session: str
    first_seq: int
    frames: int
    keyframe: bool
    data: bytes
    wall_times: tuple[float, ...]  # each frame's capture time (Unix seconds), for latency


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes; trailing zero bytes dropped)."""
    nals, at = [], data.find(b"\x00\x00\x01")
    while at >= 0:
        start = at + 3
        at = data.find(b"\x00\x00\x01", start)
        nal = data[start:len(data) if at < 0 else at].rstrip(b"\x00")
        if nal:
            nals.append(nal)
    return nals


def is_annexb(data: bytes) -> bool:
    return data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01"))


def length_prefixed(data: bytes) -> bytes:
    """An access unit as MP4 samples hold it: each NAL unit behind its 4-byte length (what the `avcC`/`hvcC` PyAV
    writes declares); data without Annex-B start codes is taken as already length-prefixed."""
    if not is_annexb(data):
        return data
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in split_annexb(data))


def _unescape(rbsp: bytes) -> bytes:
    """NAL payload without emulation prevention bytes (00 00 03 -> 00 00)."""
    return rbsp.replace(b"\x00\x00\x03", b"\x00\x00")


def codec_string(codec: str, parameter_sets: bytes) -> str:
    """The RFC 6381 `codecs` value of an H.264 or H.265 stream, from its SPS: Annex-B extradata or an access unit
    that carries it, or an `avcC`/`hvcC` record. H.264: `avc1.PPCCLL` (profile_idc, constraint flags, level_idc in
    hex). H.265 (ISO/IEC 14496-15 annex E): `hvc1.<space><profile>.<compatibility, bit-reversed hex>.<L|H><level>`
    then the constraint bytes in hex, trailing zero bytes left out."""
    if codec not in RAW_FORMATS:
        raise LiveMuxError(f"no codec string for {codec!r} (supported: h264, hevc)")
    if parameter_sets[:1] == b"\x01":  # a decoder configuration record: the same fields, already unescaped
        fields = parameter_sets[1:4] if codec == "h264" else parameter_sets[1:13]
    else:
        sps_type = H264_SPS if codec == "h264" else H265_SPS
        sps = next((nal for nal in split_annexb(parameter_sets) if _nal_type(codec, nal) == sps_type), None)
        if sps is None:
            raise LiveMuxError(f"no {codec} SPS in the stream's parameter sets")
        # H.264: profile_idc, constraint flags, level_idc follow the 1-byte NAL header. H.265: the 2-byte header,
        # then a byte of VPS id / sub-layers / nesting, then the profile_tier_level's 12 general bytes.
        fields = _unescape(sps[1:8])[:3] if codec == "h264" else _unescape(sps[2:32])[1:13]
    if len(fields) < (3 if codec == "h264" else 12):
        raise LiveMuxError(f"{codec} SPS too short for its profile and level")
    if codec == "h264":
        return "avc1." + fields.hex()
    space, tier, profile = fields[0] >> 6, (fields[0] >> 5) & 1, fields[0] & 0x1F
    compatibility = int(f"{int.from_bytes(fields[1:5], 'big'):032b}"[::-1], 2)
    constraints = fields[5:11].rstrip(b"\x00")
    parts = ["hvc1", f"{'' if space == 0 else 'ABC'[space - 1]}{profile}", f"{compatibility:X}",
             f"{'HL'[tier == 0]}{fields[11]}", *(f"{byte:X}" for byte in constraints)]
    return ".".join(parts)


def _nal_type(codec: str, nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F if codec == "hevc" else nal[0] & 0x1F


class LiveMuxer:
    """One session's fragmented MP4: `init` once, then `fragment(packets)` for each run of consecutive packets.

    Building it opens a PyAV template from the parameter sets and the keyframe (a few ms: call it off the event
    loop); fragments are pure byte work."""

    def __init__(self, info: StreamInfo, keyframe: Packet) -> None:
        video = info.video
        if video.codec not in RAW_FORMATS:
            raise LiveMuxError(f"video codec {video.codec!r} cannot be streamed live (supported: h264, hevc)")
        if not keyframe.keyframe:
            raise LiveMuxError("a live stream must start at a keyframe")
        self.session = info.session
        self.codec = video.codec
        self.width, self.height = video.width, video.height
        self.time_base = Fraction(*video.time_base)
        self.codec_string = codec_string(video.codec, video.extradata or keyframe.data)
        self.init, self.track_id, self.timescale = _init_segment(info, keyframe)
        self.origin = _decode_time(keyframe, None)
        presented = keyframe.pts if keyframe.pts is not None else self.origin
        self.wall_time = keyframe.wall_time - float((presented - self.origin) * self.time_base)
        self._sequence = 0
        self._last_dts: int | None = None
        self._last_duration = 0

    @property
    def mime(self) -> str:
        return f'video/mp4; codecs="{self.codec_string}"'

    def fragment(self, packets: Sequence[Packet]) -> Fragment:
        """The packets (video, consecutive, of this session, in decode order) as one `moof`+`mdat`. A packet whose
        decode time is not after the previous one's is refused (the stream would go backwards)."""
        video = [p for p in packets if p.track == "video"]
        if not video:
            raise LiveMuxError("a fragment needs at least one video packet")
        times = []
        for packet in video:
            dts = self._ticks(_decode_time(packet, self._last_dts) - self.origin)
            if self._last_dts is not None and dts <= self._last_dts:
                raise LiveMuxError(f"packet {packet.seq} does not come after the previous one in decode time")
            times.append(dts)
            self._last_dts = dts
        samples, payload = [], []
        for i, packet in enumerate(video):
            if i + 1 < len(video):
                duration = times[i + 1] - times[i]
            else:  # the next packet is not here yet: its stated duration, else the previous frame's
                duration = self._ticks(packet.duration) if packet.duration else self._last_duration
            self._last_duration = duration or self._last_duration
            offset = self._ticks(packet.pts - _decode_time(packet, None)) if packet.pts is not None else 0
            data = length_prefixed(packet.data)
            payload.append(data)
            samples.append(struct.pack(">IIIi", duration, len(data), _KEY_SAMPLE if packet.keyframe else _DELTA_SAMPLE,
                                       offset))
        self._sequence += 1
        data = _moof_mdat(self._sequence, self.track_id, times[0], samples, b"".join(payload))
        return Fragment(self.session, video[0].seq, len(video), video[0].keyframe, data,
                        tuple(p.wall_time for p in video))

    def _ticks(self, units: int) -> int:
        """Packet time-base units in the init's timescale."""
        return round(units * self.time_base * self.timescale)


def _decode_time(packet: Packet, previous: int | None) -> int:
    if packet.dts is not None:
        return packet.dts
    if packet.pts is not None:
        return packet.pts
    if previous is None:
        raise LiveMuxError(f"packet {packet.seq} has no timestamp")
    return previous + max(packet.duration, 1)


def _init_segment(info: StreamInfo, keyframe: Packet) -> tuple[bytes, int, int]:
    """(`ftyp`+`moov`, the track's id, its timescale) written by PyAV's MP4 muxer with no samples."""
    video = info.video
    try:
        source = av.open(io.BytesIO(video.extradata + keyframe.data), "r", format=RAW_FORMATS[video.codec],
                         options=_PROBE_OPTIONS)
    except (av.FFmpegError, ValueError) as exc:
        raise LiveMuxError(f"cannot read the session's first keyframe as {video.codec}: {exc}") from None
    try:
        if not source.streams.video:
            raise LiveMuxError(f"the session's first keyframe holds no {video.codec} video")
        out = io.BytesIO()
        with av.open(out, "w", format="mp4", container_options=_INIT_OPTIONS) as target:
            stream = target.add_stream_from_template(source.streams.video[0])
            stream.time_base = Fraction(*video.time_base)
            if video.extradata:
                stream.codec_context.extradata = video.extradata
            if video.codec == "hevc":
                stream.codec_tag = "hvc1"  # what MSE and Safari ask for (FFmpeg's default is hev1)
            target.start_encoding()
    except av.FFmpegError as exc:
        raise LiveMuxError(f"cannot write the init segment: {exc}") from None
    finally:
        source.close()
    data = out.getvalue()
    top = [b for b in boxes(data) if b.type in ("ftyp", "moov")]
    moov = next((b for b in top if b.type == "moov"), None)
    if moov is None:
        raise LiveMuxError("the MP4 muxer wrote no moov")
    trak = next(b for b in children(data, moov) if b.type == "trak")
    tkhd = next(b for b in children(data, trak) if b.type == "tkhd")
    mdia = next(b for b in children(data, trak) if b.type == "mdia")
    mdhd = next(b for b in children(data, mdia) if b.type == "mdhd")
    return b"".join(data[b.offset:b.end] for b in top), _after_times(data, tkhd), _after_times(data, mdhd)


def _after_times(data: bytes, box: Box) -> int:
    """The 32-bit field after the creation and modification times of a `tkhd` (track_ID) or `mdhd` (timescale):
    32-bit times in version 0, 64-bit in version 1."""
    body = box.body.start
    at = body + 4 + (16 if data[body] == 1 else 8)
    return int.from_bytes(data[at:at + 4], "big")


def _box(kind: bytes, *parts: bytes) -> bytes:
    return struct.pack(">I", 8 + sum(len(p) for p in parts)) + kind + b"".join(parts)


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


def _moof_mdat(sequence: int, track_id: int, base_dts: int, samples: list[bytes], payload: bytes) -> bytes:
    mfhd = _full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))
    tfhd = _full_box(b"tfhd", 0, _TFHD_BASE_IS_MOOF, struct.pack(">I", track_id))
    tfdt = _full_box(b"tfdt", 1, 0, struct.pack(">Q", base_dts))
    trun_size = 12 + 8 + sum(len(s) for s in samples)
    moof_size = 8 + len(mfhd) + 8 + len(tfhd) + len(tfdt) + trun_size
    # version 1: signed composition offsets; the data offset counts from the moof's start to the mdat's payload
    trun = _full_box(b"trun", 1, _TRUN_FIELDS, struct.pack(">Ii", len(samples), moof_size + 8), *samples)
    moof = _box(b"moof", mfhd, _box(b"traf", tfhd, tfdt, trun))
    return moof + _box(b"mdat", payload)
