"""An independent RTP packetizer written from RFC 6184 (H.264), RFC 7798 (H.265), RFC 3640 (AAC-hbr) and RFC 3551
(G.711), to check the client's depacketizers against and to feed the scripted test camera."""

from spectare.ingest.paramsets import split_annexb


def nals_of(unit: bytes) -> list[bytes]:
    return split_annexb(unit)


def packetize(codec: str, units: list[bytes], mtu: int, aggregate: bool, ts0: int = 1000, step: int = 6000,
              seq0: int = 0, offsets: list[int] | None = None) -> list[tuple[bytes, int, bool, int]]:
    """RTP payloads (payload, timestamp, marker, seq) for access units, as a camera would send them.
    Unit i is stamped ts0 + offsets[i] (default i * step)."""
    header = 2 if codec == "hevc" else 1
    out, seq = [], seq0
    for i, unit in enumerate(units):
        ts = (ts0 + (offsets[i] if offsets else i * step)) & 0xFFFFFFFF
        payloads: list[bytes] = []
        small: list[bytes] = []  # NAL units waiting to share one packet

        for nal in nals_of(unit):
            if len(nal) <= mtu:
                if aggregate and sum(len(n) + 2 for n in small) + len(nal) + 2 + header <= mtu:
                    small.append(nal)
                    continue
                payloads += aggregated(codec, small)
                small = []
                if aggregate:
                    small.append(nal)
                else:
                    payloads.append(nal)
                continue
            payloads += aggregated(codec, small)
            small = []
            body = nal[header:]
            # Each packet within the MTU with its FU header(s); so a NAL unit just over it still takes two
            # (RFC 6184 5.8 / RFC 7798 4.4.3: an FU must not be both start and end).
            size = mtu - header - 1
            pieces = [body[j:j + size] for j in range(0, len(body), size)]
            for k, piece in enumerate(pieces):
                s_bit, e_bit = 0x80 if k == 0 else 0, 0x40 if k == len(pieces) - 1 else 0
                if codec == "hevc":
                    kind = (nal[0] >> 1) & 0x3F
                    fu = bytes(((nal[0] & 0x81) | (49 << 1), nal[1], s_bit | e_bit | kind))
                else:
                    fu = bytes(((nal[0] & 0xE0) | 28, s_bit | e_bit | (nal[0] & 0x1F)))
                payloads.append(fu + piece)
        payloads += aggregated(codec, small)
        for k, payload in enumerate(payloads):
            out.append((payload, ts, k == len(payloads) - 1, seq & 0xFFFF))
            seq += 1
    return out


def aggregated(codec: str, nals: list[bytes]) -> list[bytes]:
    """One packet for NAL units that share it: a single NAL unit as it is, several in a STAP-A / AP."""
    if len(nals) <= 1:
        return list(nals)
    sizes = b"".join(len(n).to_bytes(2, "big") + n for n in nals)
    if codec == "hevc":
        return [bytes((48 << 1, nals[0][1])) + sizes]
    return [bytes((max(n[0] & 0x60 for n in nals) | 24,)) + sizes]


def interleave(packets, payload_type: int = 96, channel: int = 0, padding: int = 0, csrc: int = 0,
               extension: bytes = b"") -> bytes:
    frames = []
    for payload, ts, marker, seq in packets:
        first = 0x80 | (0x20 if padding else 0) | (0x10 if extension else 0) | csrc
        rtp = bytes((first, (0x80 if marker else 0) | payload_type)) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big")
        rtp += b"\x12\x34\x56\x78" + b"\x00\x00\x00\x01" * csrc
        if extension:
            rtp += b"\xbe\xde" + (len(extension) // 4).to_bytes(2, "big") + extension
        rtp += payload + (b"\x00" * (padding - 1) + bytes((padding,)) if padding else b"")
        frames.append(b"$" + bytes((channel,)) + len(rtp).to_bytes(2, "big") + rtp)
    return b"".join(frames)


def aac_hbr(units: list[bytes], mtu: int = 1400) -> list[tuple[bytes, bool]]:
    """RFC 3640 AAC-hbr payloads (payload, marker) for access units of one packet's timestamp: all of them in one
    packet (13-bit AU-size, 3-bit AU-index/-delta 0) when they fit, else one AU in fragments."""
    headers = b"".join(((len(u) << 3) & 0xFFFF).to_bytes(2, "big") for u in units)
    if len(units) > 1 or len(units[0]) + 4 <= mtu:
        return [((16 * len(units)).to_bytes(2, "big") + headers + b"".join(units), True)]
    unit, pieces = units[0], []
    for at in range(0, len(unit), mtu):
        pieces.append((b"\x00\x10" + headers + unit[at:at + mtu], at + mtu >= len(unit)))
    return pieces


def tone(codec: str, rate: int, seconds: float) -> tuple[list[bytes], bytes]:
    """A 440 Hz tone encoded with FFmpeg (via PyAV): AAC access units and the AudioSpecificConfig, or G.711 bytes
    (pcm_mulaw / pcm_alaw) as one unit, and b''."""
    import av
    import numpy as np

    encoder = av.CodecContext.create(codec, "w")
    encoder.sample_rate, encoder.layout = rate, "mono"
    encoder.format = "fltp" if codec == "aac" else "s16"
    encoder.open()
    size = encoder.frame_size or 160
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out: list[bytes] = []
    for at in range(0, len(samples) - size + 1, size):
        chunk = samples[at:at + size].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk if codec == "aac" else (chunk * 32767).astype(np.int16),
                                           format=encoder.format.name, layout="mono")
        frame.sample_rate, frame.pts = rate, at
        out += [bytes(p) for p in encoder.encode(frame)]
    out += [bytes(p) for p in encoder.encode(None)]
    if codec == "aac":
        return out, bytes(encoder.extradata)
    return [b"".join(out)], b""
