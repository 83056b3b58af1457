"""Real footage for tests: the demo video (`make setup` fetches it) that every test clip is cut from."""

import os
from pathlib import Path

import av

from spectare.local.stack import DEMO_SOURCE

AUD, SPS, PPS = 9, 7, 8  # H.264 NAL unit types a server or muxer may add or move


def source_video() -> Path:
    """$SPECTARE_DEMO_SOURCE if set, else the demo footage. Never skips: a missing video is a broken
    checkout, so it fails loudly with the fix."""
    path = Path(os.environ.get("SPECTARE_DEMO_SOURCE", DEMO_SOURCE))
    if not path.is_file():
        raise FileNotFoundError(f"demo source video {path} is missing; run `make setup` to fetch it")
    return path


def annexb_nals(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B access unit (start codes removed)."""
    nals, starts, i = [], [], data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        nals.append(data[start:end].rstrip(b"\x00") if n + 1 < len(starts) else data[start:end])
    return nals


def avcc_nals(data: bytes) -> list[bytes]:
    """NAL units of an MP4 (4-byte length-prefixed) access unit."""
    nals, i = [], 0
    while i + 4 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        nals.append(data[i + 4:i + 4 + size])
        i += 4 + size
    return nals


def picture_nals(nals: list[bytes]) -> list[bytes]:
    """The coded picture alone: parameter sets and access unit delimiters may be added in transit."""
    return [n for n in nals if n and n[0] & 0x1F not in (AUD, SPS, PPS)]


def file_access_units(path: Path) -> list[tuple[bool, list[bytes]]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.is_keyframe, picture_nals(avcc_nals(bytes(p)))) for p in container.demux(stream) if p.size]
