"""RTP over RTSP-interleaved TCP -> H.264 / H.265 access units in Annex-B form (pure, no I/O).

`InterleavedReader.feed()` takes whatever bytes the socket gave: `$`-framed RTP/RTCP packets (RFC 2326
10.12) and the odd RTSP response in between (keep-alive answers). Video RTP packets go to a
`Depacketizer` (RFC 6184 for H.264: single NAL, STAP-A, FU-A; RFC 7798 for H.265: single NAL, AP, FU),
which joins the NAL units of one timestamp into one access unit with start codes, exactly the form
FFmpeg's RTSP demuxer hands out, so everything downstream is the same whichever client read it.

This is the per-packet hot path of ingest (hundreds of RTP packets per second per camera), so it
works on memoryviews and keeps per-packet Python to a few lines.
"""

from dataclasses import dataclass, field

from .paramsets import START_CODE, nal_type, parameter_set_types
from .rtpaudio import AudioDepacketizer

_H264_STAP_A, _H264_FU_A = 24, 28
_H265_AP, _H265_FU = 48, 49
_H264_IDR = 5
_H265_IRAP = range(16, 24)


class UnsupportedStream(Exception):
    """The stream uses an RTP feature this client does not read; FFmpeg's client may."""


@dataclass(slots=True)
class AccessUnit:
    timestamp: int  # RTP timestamp, extended past 32-bit wrap-around, in clock-rate units
    data: bytes  # NAL units with 4-byte start codes
    keyframe: bool


@dataclass
class DepacketizerStats:
    dropped_nals: int = 0  # fragments lost (sequence gap) or of an unsupported packetization
    lost_packets: int = 0  # RTP sequence-number gaps


class Depacketizer:
    """One video stream's RTP payloads -> access units. `pending` collects finished units."""

    def __init__(self, codec: str) -> None:
        if codec not in ("h264", "hevc"):
            raise UnsupportedStream(f"no RTP depacketizer for {codec}")
        self.codec = codec
        self.hevc = codec == "hevc"
        self.pending: list[AccessUnit] = []
        self.parameter_sets: dict[int, bytes] = {}  # latest in-band SPS/PPS (and VPS) by NAL type
        self.stats = DepacketizerStats()
        self._wanted_sets = parameter_set_types(codec)
        self._parts: list = []  # of the access unit being assembled
        self._keyframe = False
        self._timestamp: int | None = None  # extended
        self._last_ts32 = 0
        self._fragment: list | None = None  # of a NAL unit arriving in fragments
        self._next_seq: int | None = None
        self._orphans = False  # continuation fragments of a NAL unit already counted as dropped

    def push(self, payload: memoryview, ts32: int, marker: int, seq: int) -> None:
        if self._next_seq is not None and seq != self._next_seq:
            self.stats.lost_packets += 1
            if self._fragment is not None:  # its middle is gone: the NAL unit cannot be rebuilt
                self._fragment = None
                self.stats.dropped_nals += 1
                self._orphans = True
        self._next_seq = (seq + 1) & 0xFFFF
        if self._timestamp is None:
            self._timestamp, self._last_ts32 = 0, ts32
        elif ts32 != self._last_ts32:
            self.finish()
            delta = (ts32 - self._last_ts32) & 0xFFFFFFFF
            self._timestamp += delta - (1 << 32) if delta >= 1 << 31 else delta
            self._last_ts32 = ts32
        if self.hevc:
            self._h265(payload)
        else:
            self._h264(payload)
        if marker:
            self.finish()

    def finish(self) -> None:
        """Close the access unit being assembled (its timestamp ended, or the marker bit said so)."""
        if self._fragment is not None:
            self._fragment = None
            self.stats.dropped_nals += 1
        if self._parts and self._timestamp is not None:
            self.pending.append(AccessUnit(self._timestamp, b"".join(self._parts), self._keyframe))
            self._parts = []
            self._keyframe = False

    # -- H.264 (RFC 6184) -------------------------------------------------------------------------

    def _h264(self, payload: memoryview) -> None:
        kind = payload[0] & 0x1F
        if kind == _H264_FU_A:
            if len(payload) >= 3:
                self._fragment_unit(payload, payload[1], 2, payload[1] & 0x1F)
        elif kind == _H264_STAP_A:
            self._aggregate(payload, 1)
        elif 1 <= kind <= 23:
            self._nal(payload, kind)
        else:  # STAP-B, MTAP, FU-B: interleaved mode, which cameras do not use over TCP
            self.stats.dropped_nals += 1

    # -- H.265 (RFC 7798) -------------------------------------------------------------------------

    def _h265(self, payload: memoryview) -> None:
        if len(payload) < 3:
            return
        kind = (payload[0] >> 1) & 0x3F
        if kind == _H265_FU:
            self._fragment_unit(payload, payload[2], 3, payload[2] & 0x3F)
        elif kind == _H265_AP:
            self._aggregate(payload, 2)
        elif kind < 48:
            self._nal(payload, kind)
        else:  # PACI and reserved types
            self.stats.dropped_nals += 1

    # -- common -----------------------------------------------------------------------------------

    def _fragment_unit(self, payload: memoryview, fu: int, body_at: int, kind: int) -> None:
        """One piece of a fragmented NAL unit (FU-A / FU); `fu` holds its start and end bits."""
        if fu & 0x80:  # start: the NAL header is rebuilt from the payload header and the FU's type
            if self.hevc:
                header = bytes(((payload[0] & 0x81) | (kind << 1), payload[1]))
            else:
                header = bytes(((payload[0] & 0xE0) | kind,))
            self._fragment = [header, payload[body_at:]]
        elif self._fragment is not None:
            self._fragment.append(payload[body_at:])
        else:  # a fragment whose start is gone
            if fu & 0x40:
                self.stats.dropped_nals += 0 if self._orphans else 1
                self._orphans = False
            return
        if fu & 0x40:  # end
            nal = b"".join(self._fragment)
            self._fragment = None
            self._nal(nal, kind)

    def _aggregate(self, payload: memoryview, header: int) -> None:
        pos, end = header, len(payload)
        while pos + 2 <= end:
            size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > end:
                self.stats.dropped_nals += 1
                return
            nal = payload[pos:pos + size]
            self._nal(nal, nal_type(self.codec, nal))
            pos += size

    def _nal(self, nal, kind: int) -> None:
        self._parts.append(START_CODE)
        self._parts.append(nal)
        if kind in self._wanted_sets:
            self.parameter_sets[kind] = bytes(nal)
        elif (kind in _H265_IRAP) if self.hevc else kind == _H264_IDR:
            self._keyframe = True


@dataclass
class InterleavedReader:
    """Splits the bytes of an RTSP connection in PLAY state: `$` frames and RTSP messages. RTP on the audio
    channel, when there is one, goes to `audio` (an `rtpaudio` depacketizer); other channels (RTCP) are skipped."""

    video_channel: int
    depacketizer: Depacketizer
    payload_type: int
    messages: list[bytes] = field(default_factory=list)  # RTSP responses/requests that arrived
    audio_channel: int = -1
    audio: AudioDepacketizer | None = None
    audio_payload_type: int = -1
    _tail: bytes = b""

    def feed(self, data: bytes) -> None:
        """Consume received bytes; finished access units land in `depacketizer.pending`."""
        buf = self._tail + data if self._tail else data
        view = memoryview(buf)
        pos, size = 0, len(buf)
        video, payload_type, push = self.video_channel, self.payload_type, self.depacketizer.push
        while size - pos >= 4:
            if buf[pos] != 0x24:  # '$'
                consumed = self._message(buf, pos)
                if consumed == 0:
                    break
                pos += consumed
                continue
            end = pos + 4 + ((buf[pos + 2] << 8) | buf[pos + 3])
            if end > size:
                break
            if buf[pos + 1] == video and end - pos >= 16:
                p = pos + 4
                first = buf[p]
                header = 12 + 4 * (first & 0x0F)
                if first & 0x10:  # header extension
                    if p + header + 4 > end:
                        pos = end
                        continue
                    header += 4 + 4 * ((buf[p + header + 2] << 8) | buf[p + header + 3])
                stop = end - buf[end - 1] if first & 0x20 else end  # padding
                second = buf[p + 1]
                if p + header < stop and second & 0x7F == payload_type:
                    push(view[p + header:stop], int.from_bytes(buf[p + 4:p + 8], "big"), second & 0x80,
                         (buf[p + 2] << 8) | buf[p + 3])
            elif buf[pos + 1] == self.audio_channel and self.audio is not None:
                self._audio_packet(buf, view, pos + 4, end)
            pos = end
        self._tail = bytes(view[pos:]) if pos < size else b""

    def _audio_packet(self, buf: bytes, view: memoryview, p: int, end: int) -> None:
        """One RTP packet of the audio channel at buf[p:end]: to the audio depacketizer, or counted as garbage."""
        assert self.audio is not None
        stats = self.audio.stats
        if end - p < 12 or buf[p] >> 6 != 2:
            stats.bad_payloads += 1
            return
        first, second = buf[p], buf[p + 1]
        header = 12 + 4 * (first & 0x0F)
        if first & 0x10 and p + header + 4 <= end:
            header += 4 + 4 * ((buf[p + header + 2] << 8) | buf[p + header + 3])
        stop = end - buf[end - 1] if first & 0x20 else end
        if p + header >= stop:
            stats.bad_payloads += 1
        elif second & 0x7F != self.audio_payload_type:
            stats.wrong_payload_type += 1
        else:
            self.audio.push(view[p + header:stop], int.from_bytes(buf[p + 4:p + 8], "big"), second & 0x80,
                            (buf[p + 2] << 8) | buf[p + 3])

    def _message(self, buf: bytes, pos: int) -> int:
        """Length of the RTSP message at `pos` (0: incomplete). Garbage up to the next '$' is skipped."""
        if not buf.startswith((b"RTSP/", b"GET_PARAMETER", b"SET_PARAMETER", b"OPTIONS", b"ANNOUNCE"), pos):
            nxt = buf.find(b"$", pos + 1)
            return (nxt if nxt >= 0 else len(buf)) - pos
        head_end = buf.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return 0
        head = bytes(buf[pos:head_end])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        end = head_end + 4 + length
        if end > len(buf):
            return 0
        self.messages.append(bytes(buf[pos:end]))
        return end - pos
