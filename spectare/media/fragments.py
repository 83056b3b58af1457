"""Live fragments: one camera session's packets as a fragmented MP4 stream a browser's MediaSource plays, remuxed,
never transcoded, plus the RFC 6381 codec strings (`avc1.64001f`, `hvc1.1.6.L93.90`, `mp4a.40.2`) its
`addSourceBuffer` needs.

A `LiveMuxer` is built per session from the StreamInfo and the session's first keyframe: its `init` is `ftyp`+`moov`
(PyAV writes it: the `avcC`/`hvcC` from the parameter sets, sample entry `avc1` or `hvc1`; with the session's AAC
audio, a second track `mp4a` whose `esds` holds the AudioSpecificConfig), and `fragment(packets)` gives one
`moof`+`mdat` holding those packets, whole frames in decode order, addressed from the `moof` (`default-base-is-moof`):
one `traf` per track present (video first), each with its own `tfdt` on its own timescale and one `trun` with each
sample's duration, size, flags and composition offset; the `mdat` holds the video samples, then the audio ones. One
`moof` for both tracks of a packet group keeps MediaSource's two track buffers level (its buffered range is where
both have media), so the live edge is never held back by a track that comes in a later append.

Why the fragments are written here and not by PyAV: with `movflags=frag_every_frame` the MP4 muxer writes a frame's
fragment only when the next frame is muxed (it is flushed by the next packet), and PyAV does not expose the
`av_write_frame(NULL)` that would flush it. A live viewer would then wait for the frame after the last one of every
packet group: up to one group (`[ingest] group_max_s`) more. A `moof` for one video track is ~60 bytes of fixed
layout, so the muxer writes it itself, a whole group at a time, in microseconds and without PyAV on the event loop.

Times: decode time 0 of a muxer's timeline is its first packet's decode time; `wall_time` is the Unix time of that
instant (the packets' wall time is the session anchor advanced by pts), so a frame presented at media time t was
captured at `wall_time + t`. Audio is on the same clock: its decode time 0 is that same `wall_time`, so a sample
is placed at (its wall time - `wall_time`) in samples; from there it advances by its pts (samples), re-placed by
its wall time only where the pts jump by more than a frame from where they should be (the camera's audio restarted).
A packet whose pts is within 1/16 frame of where the previous one ends starts exactly there: cameras' RTP audio
clocks jitter by a sample, and a player would hear each such step as a gap or an overlap to splice.
Audio from before the stream's start (decode time < 0) and audio that would go backwards are left out and counted.
"""

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av

from spectare.core.errors import SpectareError
from spectare.schemas import AccessUnit, AudioTrack, Packet, StreamInfo

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
AAC_FRAME_SAMPLES = 1024  # an AAC-LC access unit's duration when a packet states none
_SNAP_FRACTION = 16  # an audio packet within 1/16 frame of where the previous one ends is placed right there
# The AAC sampling frequency indices (ISO/IEC 14496-3 table 1.18), for the ADTS header of the audio template.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


class LiveMuxError(SpectareError):
    """Packets that cannot be made into fragments: an unsupported codec, no parameter sets, an unreadable keyframe."""


@dataclass(frozen=True)
class Fragment:
    """One `moof`+`mdat` of a session: `frames` whole video frames (and any audio frames) from `first_seq`;
    `keyframe` when its first packet is a video keyframe (a viewer may start there)."""

    session: str
    first_seq: int
    frames: int
    keyframe: bool
    data: bytes
    wall_times: tuple[float, ...]  # each video frame's capture time (Unix seconds), for latency
    audio_wall_times: tuple[float, ...] = ()  # each audio frame's
    audio_dropped: int = 0  # audio frames left out (before the stream's start, or going backwards)

    @property
    def captured_until(self) -> float:
        """The capture time of the latest frame in it, of either track."""
        return max(self.wall_times + self.audio_wall_times)


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


def aac_codec_string(config: bytes) -> str:
    """The RFC 6381 `codecs` value of AAC audio from its AudioSpecificConfig: `mp4a.40.<audio object type>` (2 is
    AAC-LC, 5 HE-AAC, 29 HE-AACv2; type 31 escapes to 32 + the next 6 bits)."""
    if len(config) < 2:
        raise LiveMuxError("the stream info's AAC track has no AudioSpecificConfig")
    object_type = config[0] >> 3
    if object_type == 31:
        object_type = 32 + (((config[0] & 0x07) << 3) | (config[1] >> 5))
    if object_type == 0:
        raise LiveMuxError("the AAC AudioSpecificConfig names no audio object type")
    return f"mp4a.40.{object_type}"


@dataclass(frozen=True)
class _Track:
    track_id: int
    timescale: int


@dataclass(frozen=True)
class _Run:
    """One track's samples in a fragment: its `traf` and its part of the `mdat`."""

    track_id: int
    base_dts: int
    samples: list[bytes]
    payload: bytes


class LiveMuxer:
    """One session's fragmented MP4: `init` once, then `fragment(packets)` for each run of consecutive packets.

    Building it opens a PyAV template from the parameter sets and the keyframe (a few ms: call it off the event
    loop); fragments are pure byte work. The session's audio goes along when it is AAC with its
    AudioSpecificConfig; otherwise `audio_left_out` says why the stream is video only."""

    def __init__(self, info: StreamInfo, keyframe: Packet) -> None:
        video = info.video
        if video.codec not in RAW_FORMATS:
            raise LiveMuxError(f"video codec {video.codec!r} cannot be streamed live (supported: h264, hevc)")
        if not keyframe.keyframe or keyframe.track != "video":
            raise LiveMuxError("a live stream must start at a keyframe")
        self.session = info.session
        self.codec = video.codec
        self.width, self.height = video.width, video.height
        self.time_base = Fraction(*video.time_base)
        self.codec_string = codec_string(video.codec, video.extradata or keyframe.data)
        self.audio: AudioTrack | None = None
        self.audio_codec_string: str | None = None
        self.audio_left_out: str | None = None
        if info.audio is not None:
            try:
                if info.audio.codec != "aac":
                    raise LiveMuxError(f"audio codec {info.audio.codec!r} cannot be streamed live (supported: aac)")
                self.audio_codec_string = aac_codec_string(info.audio.extradata)
                self.audio = info.audio
            except LiveMuxError as exc:
                self.audio_left_out = str(exc)
        self.init, tracks = _init_segment(info, keyframe, self.audio)
        self.track_id, self.timescale = tracks["vide"].track_id, tracks["vide"].timescale
        self.origin = _decode_time(keyframe, None)
        presented = keyframe.pts if keyframe.pts is not None else self.origin
        self.wall_time = keyframe.wall_time - float((presented - self.origin) * self.time_base)
        self._sequence = 0
        self._last_dts: int | None = None
        self._last_duration = 0
        self._audio = _AudioTimeline(self.audio, tracks["soun"], self.wall_time) if self.audio is not None else None

    @property
    def mime(self) -> str:
        codecs = ",".join(c for c in (self.codec_string, self.audio_codec_string) if c)
        return f'video/mp4; codecs="{codecs}"'

    def fragment(self, packets: Sequence[Packet]) -> Fragment:
        """The packets (consecutive, of this session, each track in decode order) as one `moof`+`mdat`: the video
        ones, and the audio ones when the stream has audio. A video packet whose decode time is not after the
        previous one's is refused (the stream would go backwards); such an audio packet is left out."""
        video = [p for p in packets if p.track == "video"]
        audio = [p for p in packets if p.track == "audio"] if self._audio is not None else []
        if not video and not audio:
            raise LiveMuxError("a fragment needs at least one packet of the stream's tracks")
        runs = [self._video_run(video)] if video else []
        units = [(p, unit) for p in audio for unit in p.access_units(self._audio.seconds)] \
            if self._audio is not None else []
        kept: list[int] = []
        if self._audio is not None and units:
            run, kept = self._audio.run([unit for _, unit in units])
            if run is not None:
                runs.append(run)
        if not runs:
            return Fragment(self.session, packets[0].seq, 0, False, b"", (), (), len(units))
        self._sequence += 1
        written = {id(p) for p in video} | {id(units[i][0]) for i in kept}
        first = next(p for p in packets if id(p) in written)
        return Fragment(self.session, packets[0].seq, len(video), first.track == "video" and first.keyframe,
                        _moof_mdat(self._sequence, runs), tuple(p.wall_time for p in video),
                        tuple(units[i][1].wall_time for i in kept), len(units) - len(kept))

    def _video_run(self, video: list[Packet]) -> _Run:
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
        return _Run(self.track_id, times[0], samples, b"".join(payload))

    def _ticks(self, units: int) -> int:
        """Packet time-base units in the init's timescale."""
        return round(units * self.time_base * self.timescale)


class _AudioTimeline:
    """Audio packets -> decode times on the stream's timeline, whose 0 is `wall_time` (see the module docstring)."""

    def __init__(self, audio: AudioTrack, track: _Track, wall_time: float) -> None:
        self.track_id, self.timescale = track.track_id, track.timescale
        self.time_base = Fraction(*audio.time_base)
        self.seconds = float(self.time_base)  # of one pts unit
        self.wall_time = wall_time
        self.frame = self._ticks(AAC_FRAME_SAMPLES)
        self._origin: int | None = None  # the pts (in the timescale) at decode time 0
        self._last_dts: int | None = None
        self._next: int | None = None  # where the packet after the last one kept starts
        self._last_duration = self.frame

    def run(self, audio: list[AccessUnit]) -> tuple[_Run | None, list[int]]:
        """The access units' `traf` data (None when none is kept) and the positions of those kept."""
        kept: list[tuple[int, int]] = []  # (decode time, position)
        for n, unit in enumerate(audio):
            if unit.pts is None:
                continue
            at = self._ticks(unit.pts)
            by_wall = round((unit.wall_time - self.wall_time) * self.timescale)
            if self._origin is None or abs(at - self._origin - by_wall) > self.frame:
                self._origin = at - by_wall
            dts = at - self._origin
            if self._next is not None and abs(dts - self._next) <= self.frame // _SNAP_FRACTION:
                dts = self._next  # a camera's audio clock rounded to the RTP rate: jitter of a sample or so
            if dts < 0 or (self._last_dts is not None and dts <= self._last_dts):
                continue  # before the stream's start (a viewer starts at a keyframe), or going backwards
            kept.append((dts, n))
            self._last_dts = dts
            self._next = dts + (self._ticks(unit.duration) if unit.duration else self.frame)
        if not kept:
            return None, []
        samples = []
        for i, (dts, n) in enumerate(kept):
            unit = audio[n]
            if i + 1 < len(kept):
                duration = kept[i + 1][0] - dts
            else:
                duration = self._ticks(unit.duration) if unit.duration else self._last_duration
            self._last_duration = duration or self._last_duration
            # every AAC frame is a sync sample
            samples.append(struct.pack(">IIIi", duration, len(unit.data), _KEY_SAMPLE, 0))
        return (_Run(self.track_id, kept[0][0], samples, b"".join(audio[n].data for _, n in kept)),
                [n for _, n in kept])

    def _ticks(self, units: int) -> int:
        return round(units * self.time_base * self.timescale)


def _decode_time(packet: Packet, previous: int | None) -> int:
    if packet.dts is not None:
        return packet.dts
    if packet.pts is not None:
        return packet.pts
    if previous is None:
        raise LiveMuxError(f"packet {packet.seq} has no timestamp")
    return previous + max(packet.duration, 1)


def _init_segment(info: StreamInfo, keyframe: Packet, audio: AudioTrack | None) -> tuple[bytes, dict[str, _Track]]:
    """(`ftyp`+`moov`, its tracks by handler type: `vide`, and `soun` with audio) written by PyAV's MP4 muxer with no
    samples."""
    video = info.video
    sources = []
    try:
        try:
            source = av.open(io.BytesIO(video.extradata + keyframe.data), "r", format=RAW_FORMATS[video.codec],
                             options=_PROBE_OPTIONS)
        except (av.FFmpegError, ValueError) as exc:
            raise LiveMuxError(f"cannot read the session's first keyframe as {video.codec}: {exc}") from None
        sources.append(source)
        if not source.streams.video:
            raise LiveMuxError(f"the session's first keyframe holds no {video.codec} video")
        if audio is not None:
            # The muxer takes an audio stream from a template only (one it adds itself it opens as an encoder,
            # which writes its own AudioSpecificConfig): an ADTS header with the track's rate and channels gives one,
            # and the track's own AudioSpecificConfig goes into the `esds`.
            sources.append(av.open(io.BytesIO(_adts_header(audio.sample_rate, audio.channels)), "r", format="aac",
                                   options=_PROBE_OPTIONS))
            if not sources[-1].streams.audio:
                raise LiveMuxError("cannot make the init segment's audio track")
        out = io.BytesIO()
        with av.open(out, "w", format="mp4", container_options=_INIT_OPTIONS) as target:
            stream = target.add_stream_from_template(source.streams.video[0])
            stream.time_base = Fraction(*video.time_base)
            if video.extradata:
                stream.codec_context.extradata = video.extradata
            if video.codec == "hevc":
                stream.codec_tag = "hvc1"  # what MSE and Safari ask for (FFmpeg's default is hev1)
            if audio is not None:
                sound = target.add_stream_from_template(sources[-1].streams.audio[0])
                sound.time_base = Fraction(*audio.time_base)
                sound.codec_context.sample_rate = audio.sample_rate
                sound.codec_context.extradata = audio.extradata
                sound.codec_context.bit_rate = 0
            target.start_encoding()
    except av.FFmpegError as exc:
        raise LiveMuxError(f"cannot write the init segment: {exc}") from None
    finally:
        for opened in sources:
            opened.close()
    data = out.getvalue()
    top = [b for b in boxes(data) if b.type in ("ftyp", "moov")]
    moov = next((b for b in top if b.type == "moov"), None)
    if moov is None:
        raise LiveMuxError("the MP4 muxer wrote no moov")
    tracks = {}
    for trak in (b for b in children(data, moov) if b.type == "trak"):
        tkhd = next(b for b in children(data, trak) if b.type == "tkhd")
        mdia = next(b for b in children(data, trak) if b.type == "mdia")
        parts = {b.type: b for b in children(data, mdia)}
        handler = data[parts["hdlr"].body.start + 8:parts["hdlr"].body.start + 12].decode("latin-1")
        tracks[handler] = _Track(_after_times(data, tkhd), _after_times(data, parts["mdhd"]))
    if "vide" not in tracks or (audio is not None and "soun" not in tracks):
        raise LiveMuxError("the MP4 muxer left a track out of the init segment")
    return b"".join(data[b.offset:b.end] for b in top), tracks


def _adts_header(sample_rate: int, channels: int) -> bytes:
    """A 7-byte ADTS header of an empty AAC-LC frame: enough for FFmpeg's ADTS demuxer to give an AAC stream."""
    rate_index = _AAC_RATES.index(sample_rate) if sample_rate in _AAC_RATES else 3  # the rate is set apart
    channel_config = channels if channels <= 6 else 7
    size = 7
    return bytes([0xFF, 0xF1, (1 << 6) | (rate_index << 2) | (channel_config >> 2),
                  ((channel_config & 0x03) << 6) | (size >> 11), (size >> 3) & 0xFF, ((size & 0x07) << 5) | 0x1F,
                  0xFC])


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


def _moof_mdat(sequence: int, runs: list[_Run]) -> bytes:
    """One `moof` with a `traf` per run, then the `mdat` with the runs' payloads in the same order."""
    mfhd = _full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))
    # traf: header 8, tfhd 16, tfdt (version 1) 20, trun 12 + sample count 4 + data offset 4 + the samples
    moof_size = 8 + len(mfhd) + sum(8 + 16 + 20 + 20 + sum(len(s) for s in run.samples) for run in runs)
    trafs, data_offset = [], moof_size + 8  # the data offset counts from the moof's start to the run's first byte
    for run in runs:
        tfhd = _full_box(b"tfhd", 0, _TFHD_BASE_IS_MOOF, struct.pack(">I", run.track_id))
        tfdt = _full_box(b"tfdt", 1, 0, struct.pack(">Q", run.base_dts))
        # version 1: signed composition offsets
        trun = _full_box(b"trun", 1, _TRUN_FIELDS, struct.pack(">Ii", len(run.samples), data_offset), *run.samples)
        trafs.append(_box(b"traf", tfhd, tfdt, trun))
        data_offset += len(run.payload)
    moof = _box(b"moof", mfhd, *trafs)
    assert len(moof) == moof_size
    return moof + _box(b"mdat", *(run.payload for run in runs))
