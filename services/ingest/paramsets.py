"""H.264 / H.265 parameter sets: picture size and frame rate from an SPS, extradata from SDP or in-band
NAL units (pure, no I/O).

The native RTSP client learns a stream's geometry here instead of from FFmpeg's probing: the SPS is
the one place a camera states it (SDP `a=framesize` / `a=x-dimensions` are optional and sometimes
wrong). Only the fields before the size (and, for H.264, the VUI timing) are read.
"""

import base64
import binascii
from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"

# H.264 profiles whose SPS carries chroma format, bit depths and scaling lists (ITU-T H.264 7.3.2.1.1).
_H264_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
H264_SPS, H264_PPS = 7, 8
H265_VPS, H265_SPS, H265_PPS = 32, 33, 34


class ParameterSetError(ValueError):
    """A parameter set that cannot be read (truncated or not what it claims to be)."""


@dataclass(frozen=True)
class Geometry:
    width: int
    height: int
    fps: float | None  # from the VUI timing info, when the camera states it
    # Most frames that may precede a frame in decode order and follow it in output order (H.264 VUI
    # max_num_reorder_frames, H.265 sps_max_num_reorder_pics); None when the SPS does not say.
    reorder_depth: int | None = None


def nal_type(codec: str, nal: bytes | memoryview) -> int:
    return (nal[0] >> 1) & 0x3F if codec == "hevc" else nal[0] & 0x1F


def parameter_set_types(codec: str) -> tuple[int, ...]:
    """The NAL types extradata needs, in the order decoders expect them."""
    return (H265_VPS, H265_SPS, H265_PPS) if codec == "hevc" else (H264_SPS, H264_PPS)


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes)."""
    nals, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        pos = data.find(b"\x00\x00\x01", start)
        end = len(data) if pos < 0 else pos - (1 if data[pos - 1] == 0 else 0)
        if end > start:
            nals.append(data[start:end])
    return nals


def sprop_nals(values: list[str]) -> list[bytes]:
    """NAL units of SDP sprop parameters (comma-separated base64, RFC 6184 8.1 / RFC 7798 7.1)."""
    nals = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                nal = base64.b64decode(part + "=" * (-len(part) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise ParameterSetError(f"sprop parameter set {part[:20]!r} is not base64") from None
            if nal:
                nals.append(nal)
    return nals


def geometry(codec: str, sps: bytes) -> Geometry:
    """Picture size (after cropping) and stated frame rate of an SPS NAL unit (header included)."""
    try:
        if codec == "hevc":
            return _h265_geometry(_BitReader(_unescape(sps[2:])))
        return _h264_geometry(_BitReader(_unescape(sps[1:])))
    except IndexError:
        raise ParameterSetError(f"{codec} SPS of {len(sps)} bytes is truncated") from None


def _unescape(rbsp: bytes) -> bytes:
    """Remove emulation-prevention bytes (00 00 03 -> 00 00)."""
    return rbsp.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in rbsp else rbsp


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.size = len(data) * 8
        self.pos = 0

    def u(self, bits: int) -> int:
        if self.pos + bits > self.size:
            raise IndexError("read past the end")
        self.pos += bits
        return (self.value >> (self.size - self.pos)) & ((1 << bits) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise IndexError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def _h264_geometry(r: _BitReader) -> Geometry:
    profile = r.u(8)
    r.u(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma_format = 1
    separate_planes = 0
    if profile in _H264_HIGH_PROFILES:
        chroma_format = r.ue()
        if chroma_format == 3:
            separate_planes = r.u(1)
        r.ue(), r.ue(), r.u(1)  # bit depths, qpprime_y_zero_transform_bypass
        if r.u(1):  # seq_scaling_matrix_present
            for i in range(12 if chroma_format == 3 else 8):
                if r.u(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.u(1), r.se(), r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue(), r.u(1)  # max_num_ref_frames, gaps_in_frame_num_allowed
    width_mbs, height_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.u(1)  # mb_adaptive_frame_field
    r.u(1)  # direct_8x8_inference
    crop = (r.ue(), r.ue(), r.ue(), r.ue()) if r.u(1) else (0, 0, 0, 0)
    chroma = 0 if separate_planes else chroma_format
    sub_w, sub_h = {1: (2, 2), 2: (2, 1), 3: (1, 1)}.get(chroma, (1, 1))
    unit_x = 1 if chroma == 0 else sub_w
    unit_y = (1 if chroma == 0 else sub_h) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - unit_y * (crop[2] + crop[3])
    # Without a VUI that says otherwise: no reordering where the profile has no B slices (Baseline) or the
    # picture order is the decode order (POC type 2), else unknown.
    inherent = 0 if profile == 66 or poc_type == 2 else None
    if not r.u(1):  # vui_parameters_present
        return Geometry(width, height, None, inherent)
    fps, declared = _h264_vui(r)
    return Geometry(width, height, fps, declared if declared is not None else inherent)


def _skip_scaling_list(r: _BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se() + 256) % 256
        last = nxt or last


def _h264_vui(r: _BitReader) -> tuple[float | None, int | None]:
    """(frame rate, max_num_reorder_frames) of a VUI, either None when it is not stated. A VUI cut short after
    the timing info leaves the reorder depth unknown rather than failing the SPS: cameras get this part wrong."""
    if r.u(1) and r.u(8) == 255:  # aspect_ratio_info: extended SAR
        r.u(32)
    if r.u(1):  # overscan_info_present
        r.u(1)
    if r.u(1):  # video_signal_type_present
        r.u(4)
        if r.u(1):
            r.u(24)
    if r.u(1):  # chroma_loc_info_present
        r.ue(), r.ue()
    fps = None
    if r.u(1):  # timing_info_present
        units, scale = r.u(32), r.u(32)
        fps = scale / (2 * units) if units and scale else None
        r.u(1)  # fixed_frame_rate
    try:
        return fps, _h264_reorder_depth(r)
    except IndexError:
        return fps, None


def _h264_reorder_depth(r: _BitReader) -> int | None:
    nal_hrd = r.u(1) and _skip_hrd(r)
    vcl_hrd = r.u(1) and _skip_hrd(r)
    if nal_hrd or vcl_hrd:
        r.u(1)  # low_delay_hrd
    r.u(1)  # pic_struct_present
    if not r.u(1):  # bitstream_restriction
        return None
    r.u(1)  # motion_vectors_over_pic_boundaries
    for _ in range(4):  # max_bytes_per_pic_denom, max_bits_per_mb_denom, log2_max_mv_length_h/v
        r.ue()
    return r.ue()  # max_num_reorder_frames


def _skip_hrd(r: _BitReader) -> bool:
    """Skip hrd_parameters() (H.264 E.1.2); True, for `present and skipped`."""
    count = r.ue() + 1
    r.u(8)  # bit_rate_scale, cpb_size_scale
    for _ in range(count):
        r.ue(), r.ue(), r.u(1)
    r.u(20)  # four 5-bit delay/offset lengths
    return True


def _h265_geometry(r: _BitReader) -> Geometry:
    r.u(4)  # sps_video_parameter_set_id
    sub_layers = r.u(3)
    r.u(1)  # temporal_id_nesting
    # profile_tier_level(1, sub_layers): general part is 88 bits of profile + 8 of level.
    r.u(88), r.u(8)
    present = [(r.u(1), r.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        r.u(2 * (8 - sub_layers))
    for profile_present, level_present in present:
        if profile_present:
            r.u(88)
        if level_present:
            r.u(8)
    r.ue()  # sps_seq_parameter_set_id
    chroma_format = r.ue()
    if chroma_format == 3:
        r.u(1)  # separate_colour_plane
    width, height = r.ue(), r.ue()
    if r.u(1):  # conformance_window
        sub_w, sub_h = {1: (2, 2), 2: (2, 1)}.get(chroma_format, (1, 1))
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    r.ue(), r.ue(), r.ue()  # bit depths, log2_max_pic_order_cnt_lsb
    # sub-layer ordering info: for every sub-layer, or only the highest; the highest's applies to the whole stream
    reorder = 0
    for _ in range(sub_layers + 1 if r.u(1) else 1):
        r.ue()  # max_dec_pic_buffering
        reorder = r.ue()  # max_num_reorder_pics
        r.ue()  # max_latency_increase
    return Geometry(width, height, None, reorder)
