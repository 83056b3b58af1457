"""RTP audio payloads -> audio units (pure, no I/O): AAC in RFC 3640 `mpeg4-generic` (AAC-hbr and the other modes
that differ only in header field sizes) and G.711 (PCMU/PCMA, RFC 3551).

RFC 3640: a payload starts with AU-headers-length (16 bits: the AU headers' size in bits), then one AU header per
access unit (AU-size, AU-index or AU-index-delta, optional CTS/DTS deltas, RAP flag, stream state, sizes from the
SDP's fmtp), padding to a byte, then the access units back to back. An access unit too large for one packet
travels in fragments: packets with the same timestamp, each with one AU header giving the whole AU's size, the last
with the marker bit. AU n of a packet plays (sum of its index deltas + n) frames after the packet's timestamp.

Bad payloads (headers that claim more bits or bytes than the packet has, an AU-headers section where the SDP said
none) are dropped and counted in `stats.bad_payloads`; they never raise: a broken audio track must not end the
session, whose video keeps recording.
"""

import binascii
from dataclasses import dataclass, field

from . import sdp

AAC_FRAME_SAMPLES = 1024


class UnsupportedAudio(Exception):
    """An audio track this client does not read (another codec, LATM, interleaved AAC): video only."""


@dataclass(slots=True)
class RtpAudioRun:
    """Audio units back to back in time: unit n at `timestamp + n * duration`. A camera sends ~50 a second, so they
    travel on in runs (one per socket read, typically) rather than one by one."""

    timestamp: int  # RTP timestamp of the first, extended past 32-bit wrap-around, relative to the first packet
    duration: int  # of each, clock-rate units
    units: list[bytes]


# A unit within 1/16 of its duration of where the run it follows has it (cameras' RTP audio clocks jitter by a sample
# or so: 1024 samples at 48 kHz stamped from a nanosecond clock) joins that run there.
_JITTER_FRACTION = 16


def _add_unit(pending: list[RtpAudioRun], timestamp: int, duration: int, data: bytes) -> None:
    """A unit onto the last run when it starts where that run ends (with the same duration), else a new run."""
    if pending:
        last = pending[-1]
        if last.duration == duration and \
                abs(last.timestamp + duration * len(last.units) - timestamp) <= duration // _JITTER_FRACTION:
            last.units.append(data)
            return
    pending.append(RtpAudioRun(timestamp, duration, [data]))


@dataclass
class AudioDepacketizerStats:
    bad_payloads: int = 0  # payloads that could not be parsed (truncated AU headers, sizes past the end)
    wrong_payload_type: int = 0  # packets on the audio channel with another payload type
    lost_packets: int = 0  # RTP sequence-number gaps
    dropped_units: int = 0  # fragmented access units whose other fragments were lost


@dataclass(frozen=True)
class AacConfig:
    """The fmtp parameters of an RFC 3640 stream (bit widths of the AU header fields)."""

    size_length: int
    index_length: int
    index_delta_length: int
    cts_delta_length: int = 0
    dts_delta_length: int = 0
    random_access: bool = False
    stream_state_length: int = 0
    auxiliary_length: int = 0
    frame_samples: int = AAC_FRAME_SAMPLES
    config: bytes = b""  # AudioSpecificConfig

    @property
    def hbr_plain(self) -> bool:
        """AAC-hbr's header layout with no optional field: 13-bit size, 3-bit index (delta)."""
        return (self.size_length, self.index_length, self.index_delta_length) == (13, 3, 3) and not (
            self.cts_delta_length or self.dts_delta_length or self.random_access or self.stream_state_length
            or self.auxiliary_length)


def aac_config(fmtp: dict[str, str]) -> AacConfig:
    """An RFC 3640 fmtp line's parameters (keys lower case) -> AacConfig; UnsupportedAudio for what is not AAC in
    a mode this depacketizer reads."""
    mode = fmtp.get("mode", "").lower()
    if mode not in ("aac-hbr", "aac-lbr", ""):
        raise UnsupportedAudio(f"mpeg4-generic mode {mode!r} (only AAC-hbr / AAC-lbr)")

    def number(key: str, default: int = 0) -> int:
        value = fmtp.get(key, "").strip()
        if not value:
            return default
        if not value.isdigit() or int(value) > 32:
            raise UnsupportedAudio(f"mpeg4-generic {key}={value!r}")
        return int(value)

    try:
        config = binascii.unhexlify(fmtp.get("config", "").strip())
    except (binascii.Error, ValueError):
        raise UnsupportedAudio("mpeg4-generic config is not hex") from None
    if len(config) < 2:
        raise UnsupportedAudio("mpeg4-generic without an AudioSpecificConfig (config=)")
    sizes = AacConfig(
        size_length=number("sizelength", 13 if mode == "aac-hbr" else 6),
        index_length=number("indexlength", 3 if mode == "aac-hbr" else 2),
        index_delta_length=number("indexdeltalength", 3 if mode == "aac-hbr" else 2),
        cts_delta_length=number("ctsdeltalength"),
        dts_delta_length=number("dtsdeltalength"),
        random_access=fmtp.get("randomaccessindication", "0").strip() == "1",
        stream_state_length=number("streamstateindication"),
        auxiliary_length=number("auxiliarydatasizelength"),
        frame_samples=number("constantduration", AAC_FRAME_SAMPLES) or AAC_FRAME_SAMPLES,
        config=config,
    )
    if sizes.size_length == 0:
        raise UnsupportedAudio("mpeg4-generic without AU sizes (sizelength=0)")
    return sizes


def asc_shape(config: bytes) -> tuple[int, int] | None:
    """(sample rate, channels) an AudioSpecificConfig announces; None where it uses escape values."""
    rates = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
    if len(config) < 2 or config[0] >> 3 == 31:
        return None
    index = ((config[0] & 0x07) << 1) | (config[1] >> 7)
    channels = (config[1] >> 3) & 0x0F
    if index >= len(rates) or channels == 0:
        return None
    return rates[index], channels


class _Bits:
    """Big-endian bit reader over a byte string, for the AU headers."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data, start_bit: int, end_bit: int) -> None:
        self.data, self.pos, self.end = data, start_bit, end_bit

    def read(self, count: int) -> int:
        if count == 0:
            return 0
        end = self.pos + count
        if end > self.end:
            raise ValueError("AU header runs past its section")
        first, last = self.pos >> 3, (end + 7) >> 3  # the bytes holding the field, read as one number
        word = int.from_bytes(self.data[first:last], "big")
        self.pos = end
        return (word >> (8 * last - end)) & ((1 << count) - 1)


class _Clock:
    """Extends 32-bit RTP timestamps and counts sequence gaps."""

    def __init__(self, stats: AudioDepacketizerStats) -> None:
        self.stats = stats
        self.timestamp: int | None = None
        self._last32 = 0
        self._next_seq: int | None = None

    def advance(self, ts32: int, seq: int) -> tuple[int, bool]:
        """(extended timestamp, whether packets were lost just before this one)."""
        lost = self._next_seq is not None and seq != self._next_seq
        if lost:
            self.stats.lost_packets += 1
        self._next_seq = (seq + 1) & 0xFFFF
        if self.timestamp is None:
            self.timestamp = 0
        else:
            delta = (ts32 - self._last32) & 0xFFFFFFFF
            self.timestamp += delta - (1 << 32) if delta >= 1 << 31 else delta
        self._last32 = ts32
        return self.timestamp, lost


class AacDepacketizer:
    """RFC 3640 payloads -> runs of raw AAC access units in `pending`."""

    def __init__(self, config: AacConfig) -> None:
        self.config = config
        self.pending: list[RtpAudioRun] = []
        self.stats = AudioDepacketizerStats()
        self._clock = _Clock(self.stats)
        self._fragment: list[bytes] | None = None  # of an access unit arriving in several packets
        self._fragment_size = 0
        self._fragment_ts = 0
        self._orphan_ts: int | None = None  # timestamp of a fragmented AU whose start is gone
        self._hbr_plain = config.hbr_plain

    def push(self, payload: memoryview, ts32: int, marker: int, seq: int) -> None:
        timestamp, lost = self._clock.advance(ts32, seq)
        if self._fragment is not None and (lost or timestamp != self._fragment_ts):
            self._fragment = None
            self.stats.dropped_units += 1
            self._orphan_ts = self._fragment_ts if lost else None
        if timestamp == self._orphan_ts:
            return  # the rest of an access unit already counted as dropped
        self._orphan_ts = None
        try:
            headers, data_at = self._headers(payload)
        except ValueError:
            self.stats.bad_payloads += 1
            return
        if self._fragment is not None:
            self._continue(payload[data_at:], marker)
            return
        sizes = [size for size, _ in headers]
        if len(headers) == 1 and sizes[0] > len(payload) - data_at:  # the first fragment of a large AU
            self._fragment = [bytes(payload[data_at:])]
            self._fragment_size, self._fragment_ts = sizes[0], timestamp
            return
        if data_at + sum(sizes) > len(payload) or 0 in sizes:
            self.stats.bad_payloads += 1
            return
        step, pos, pending = self.config.frame_samples, data_at, self.pending
        for size, position in headers:
            _add_unit(pending, timestamp + position * step, step, bytes(payload[pos:pos + size]))
            pos += size

    def _continue(self, piece: memoryview, marker: int) -> None:
        assert self._fragment is not None
        self._fragment.append(bytes(piece))
        have = sum(len(p) for p in self._fragment)
        if have >= self._fragment_size or marker:
            unit = b"".join(self._fragment)
            self._fragment = None
            if len(unit) != self._fragment_size:
                self.stats.bad_payloads += 1
                return
            _add_unit(self.pending, self._fragment_ts, self.config.frame_samples, unit)

    def _headers(self, payload: memoryview) -> tuple[list[tuple[int, int]], int]:
        """[(AU size, AU position in frames from the packet's timestamp)], offset of the first AU's data."""
        c = self.config
        if len(payload) < 2:
            raise ValueError("no AU-headers-length")
        bits_total = (payload[0] << 8) | payload[1]
        end_bit = 16 + bits_total
        if end_bit > 8 * len(payload) or bits_total == 0:
            raise ValueError("AU headers past the payload")
        if self._hbr_plain:
            return self._hbr_headers(payload, bits_total)
        bits = _Bits(payload, 16, end_bit)
        headers: list[tuple[int, int]] = []
        position = 0
        while bits.end - bits.pos >= c.size_length + (c.index_delta_length if headers else c.index_length):
            size = bits.read(c.size_length)
            if headers:
                position += bits.read(c.index_delta_length) + 1
            else:
                bits.read(c.index_length)  # AU-index: the decoding-order number, position 0 here
            if c.cts_delta_length and bits.read(1):
                bits.read(c.cts_delta_length)
            if c.dts_delta_length and bits.read(1):
                bits.read(c.dts_delta_length)
            if c.random_access:
                bits.read(1)
            bits.read(c.stream_state_length)
            headers.append((size, position))
        if not headers:
            raise ValueError("no AU header")
        data_at = (end_bit + 7) // 8
        if c.auxiliary_length:  # skipped: auxiliary data carries nothing a recording needs
            aux = _Bits(payload, data_at * 8, 8 * len(payload))
            data_at += (c.auxiliary_length + aux.read(c.auxiliary_length) + 7) // 8
        return headers, data_at


    @staticmethod
    def _hbr_headers(payload: memoryview, bits_total: int) -> tuple[list[tuple[int, int]], int]:
        """AAC-hbr's usual headers: 16 bits each (13 of size, 3 of index or index delta), nothing else; a camera
        sends ~50 a second, so they are read two bytes at a time."""
        headers: list[tuple[int, int]] = []
        position = -1
        for at in range(2, 2 + 2 * (bits_total // 16), 2):
            header = (payload[at] << 8) | payload[at + 1]
            position += (header & 0x07) + 1 if headers else 1
            headers.append((header >> 3, position))
        if not headers:
            raise ValueError("no AU header")
        return headers, 2 + (bits_total + 7) // 8


class G711Depacketizer:
    """PCMU/PCMA payloads (one byte per sample, RFC 3551) -> runs of their samples (one unit a packet) in
    `pending`."""

    def __init__(self, channels: int = 1) -> None:
        self.channels = max(channels, 1)
        self.pending: list[RtpAudioRun] = []
        self.stats = AudioDepacketizerStats()
        self._clock = _Clock(self.stats)

    def push(self, payload: memoryview, ts32: int, marker: int, seq: int) -> None:
        timestamp, _ = self._clock.advance(ts32, seq)
        if len(payload) % self.channels:
            self.stats.bad_payloads += 1
            return
        _add_unit(self.pending, timestamp, len(payload) // self.channels, bytes(payload))


AudioDepacketizer = AacDepacketizer | G711Depacketizer


@dataclass(frozen=True)
class RtpAudio:
    """How to read one SDP audio section: its depacketizer and the track's shape."""

    codec: str  # FFmpeg name of what the camera sends
    sample_rate: int
    channels: int
    extradata: bytes
    depacketizer: AudioDepacketizer = field(compare=False)


def rtp_audio(media: sdp.Media) -> RtpAudio:
    """The depacketizer and shape of an SDP audio section; UnsupportedAudio when this client does not read it."""
    if media.encoding == "mpeg4-generic":
        config = aac_config(media.fmtp)
        shape = asc_shape(config.config)
        rate, channels = shape if shape else (media.clock_rate, media.channels)
        return RtpAudio("aac", rate, channels, config.config, AacDepacketizer(config))
    if media.encoding in ("pcmu", "pcma"):
        codec = "pcm_mulaw" if media.encoding == "pcmu" else "pcm_alaw"
        return RtpAudio(codec, media.clock_rate, media.channels, b"", G711Depacketizer(media.channels))
    if media.encoding == "mp4a-latm":
        raise UnsupportedAudio("AAC in LATM (MP4A-LATM)")
    raise UnsupportedAudio(f"audio codec {media.encoding or 'unknown'}")

