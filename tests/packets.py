"""Real packets for segmenter tests: a clip made by `make_test_clip`, demuxed as ingest would publish it.

MP4 files hold AVCC H.264; RTSP (what ingest sees) gives Annex-B, so every packet goes through
`h264_mp4toannexb` and the extradata is rewritten from avcC to Annex-B start codes.
"""

import io
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.bitstream import BitStreamFilterContext

from spectare.schemas import AudioTrack, Packet, StreamInfo, VideoTrack
from spectare.segmenter.chunker import Chunker, ChunkPlan, CloseChunk

# The segmenter's MP4 options before chunks were fragmented: `Remuxer(PLAIN_MP4_OPTIONS)` makes the plain MP4
# chunks (one mdat, moov at the end) stored until then.
PLAIN_MP4_OPTIONS = {"fflags": "+bitexact"}


@dataclass(frozen=True)
class ClipPacket:
    """One demuxed packet of a clip, before it is given a camera, a session and a wall time."""

    track: str
    pts: int
    dts: int
    duration: int
    keyframe: bool
    data: bytes
    time_base: Fraction

    @property
    def seconds(self) -> float:
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class Clip:
    video: VideoTrack
    audio: AudioTrack | None
    packets: tuple[ClipPacket, ...]  # in demux (decode) order, tracks interleaved

    @property
    def frames(self) -> int:
        return sum(1 for p in self.packets if p.track == "video")

    def stream_info(self, camera: str, session: str, started_at: float) -> StreamInfo:
        return StreamInfo(camera=camera, session=session, started_at=started_at, video=self.video, audio=self.audio)

    def session_packets(self, camera: str, session: str, anchor: float, first_seq: int = 0,
                        offset_s: float = 0.0, loops: int = 1) -> list[Packet]:
        """Every packet as ingest would publish it: seq from first_seq, wall_time = anchor + pts (+ offset).
        With loops > 1 the clip plays that many times in one session, its timestamps running on."""
        video = [p for p in self.packets if p.track == "video"]
        span = video[-1].pts + video[-1].duration - video[0].pts  # one loop, in the video time base
        out = []
        for loop in range(loops):
            for p in self.packets:
                shift = round(span * video[0].time_base / p.time_base) * loop
                out.append(Packet(camera=camera, session=session, seq=first_seq + len(out), track=p.track,
                                  pts=p.pts + shift, dts=p.dts + shift, duration=p.duration, keyframe=p.keyframe,
                                  wall_time=anchor + offset_s + float((p.pts + shift) * p.time_base), data=p.data))
        return out


def avcc_to_annexb(extradata: bytes) -> bytes:
    """avcC (MP4's H.264 decoder configuration) -> SPS and PPS NAL units behind Annex-B start codes."""
    if not extradata or extradata[0] != 1:
        return extradata  # already Annex-B (or empty)
    out, i = b"", 6
    for count_at_i in (True, False):
        count = extradata[5] & 0x1F if count_at_i else extradata[i]
        if not count_at_i:
            i += 1
        for _ in range(count):
            size = int.from_bytes(extradata[i:i + 2], "big")
            out += b"\x00\x00\x00\x01" + extradata[i + 2:i + 2 + size]
            i += 2 + size
    return out


def load_clip(path: Path) -> Clip:
    with av.open(str(path)) as container:
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        ctx = vstream.codec_context
        video = VideoTrack(codec=ctx.name, width=ctx.width, height=ctx.height,
                           time_base=(vstream.time_base.numerator, vstream.time_base.denominator),
                           extradata=avcc_to_annexb(bytes(ctx.extradata or b"")),
                           fps=float(vstream.average_rate) if vstream.average_rate else None)
        audio = None
        if astream is not None:
            actx = astream.codec_context
            audio = AudioTrack(codec=actx.name, sample_rate=actx.sample_rate, channels=actx.layout.nb_channels,
                               time_base=(astream.time_base.numerator, astream.time_base.denominator),
                               extradata=bytes(actx.extradata or b""))
        bsf = BitStreamFilterContext("h264_mp4toannexb", vstream)
        packets: list[ClipPacket] = []
        streams = [vstream] + ([astream] if astream is not None else [])
        for packet in container.demux(*streams):
            if packet.stream is vstream:
                filtered = bsf.filter(packet) if packet.size else bsf.filter(None)
            else:
                filtered = [packet] if packet.size else []
            for p in filtered:
                track = "video" if packet.stream is vstream else "audio"
                packets.append(ClipPacket(track, p.pts, p.dts, p.duration, bool(p.is_keyframe) or track == "audio",
                                          bytes(p), p.time_base or packet.stream.time_base))
    return Clip(video, audio, tuple(packets))


def plans_of(clip: Clip, segment_seconds: float = 2, session: str = "s1", camera: str = "cam1",
             anchor: float = 1_800_000_000.25) -> list[ChunkPlan]:
    """Every chunk the segmenter cuts from the clip's packets, the last one closed by a stall."""
    chunker = Chunker(camera, segment_seconds, 5, now=0.0)
    actions = chunker.on_info(clip.stream_info(camera, session, anchor), 0)
    for i, packet in enumerate(clip.session_packets(camera, session, anchor), start=1):
        actions += chunker.on_packet(packet, i)
    actions += chunker.tick(1) + chunker.tick(10)
    return [a.plan for a in actions if isinstance(a, CloseChunk)]


def with_tone(video: Path, out: Path, seconds: float = 6) -> Path:
    """The video's first seconds with an AAC track beside it (a tone: the footage has no sound)."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video), "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=16000", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                    "-c:a", "aac", "-b:a", "32k", "-t", str(seconds), str(out)], check=True, timeout=60)
    return out


@dataclass(frozen=True)
class Mp4Check:
    frames: int  # video frames decoded
    audio_frames: int
    duration: float  # container duration, seconds
    first_pts: float  # first video frame's time, seconds
    fps: float


def check_mp4(data: bytes) -> Mp4Check:
    """Decode every frame of an MP4 held in memory; fail if ffmpeg reports any error doing so."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:  # a plain MP4 needs a seekable input
        f.write(data)
        f.flush()
        result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", f.name, "-f", "null", "-"],
                                capture_output=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), f"ffmpeg: {result.stderr.decode()[-500:]}"
    with av.open(io.BytesIO(data)) as container:
        vstream = container.streams.video[0]
        fps = float(vstream.average_rate or 0)
        duration = container.duration / 1e6 if container.duration else 0.0
        video_frames = list(container.decode(video=0))
    audio_frames = 0
    with av.open(io.BytesIO(data)) as container:
        if container.streams.audio:
            audio_frames = sum(1 for _ in container.decode(audio=0))
    return Mp4Check(len(video_frames), audio_frames, duration, float(video_frames[0].time), fps)
