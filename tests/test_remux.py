"""Remuxing real packets (a clip cut from the demo footage, made Annex-B as RTSP delivers it) into MP4
chunks: every chunk decodes, has the right frames and duration, and the same plan gives the same bytes."""

import subprocess
import time
from pathlib import Path

import pytest

from spectare.segmenter.chunker import Chunker, ChunkPlan, CloseChunk
from spectare.segmenter.remux import Remuxer, RemuxError

from .packets import Clip, check_mp4, load_clip

CAM = "cam1"
ANCHOR = 1_800_000_000.25


def plans_of(clip: Clip, segment_seconds: float = 2, session: str = "s1") -> list[ChunkPlan]:
    """Every chunk of the clip, the last one closed by a stall."""
    chunker = Chunker(CAM, segment_seconds, 5, now=0.0)
    actions = chunker.on_info(clip.stream_info(CAM, session, ANCHOR), 0)
    for i, packet in enumerate(clip.session_packets(CAM, session, ANCHOR), start=1):
        actions += chunker.on_packet(packet, i)
    actions += chunker.tick(1) + chunker.tick(10)
    return [a.plan for a in actions if isinstance(a, CloseChunk)]


@pytest.fixture(scope="module")
def clip(camera_clip) -> Clip:
    return load_clip(camera_clip)


@pytest.fixture(scope="module")
def av_clip(camera_clip, tmp_path_factory) -> Clip:
    """The camera clip with an AAC track beside it (a tone: the footage has no sound)."""
    out = tmp_path_factory.mktemp("avclip") / "av.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(camera_clip), "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=16000", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                    "-c:a", "aac", "-b:a", "32k", "-t", "6", str(out)], check=True, timeout=60)
    return load_clip(out)


def test_every_chunk_plays_with_its_frames_and_duration(clip):
    assert clip.video.extradata.startswith(b"\x00\x00\x00\x01"), "extradata must be Annex-B, as from RTSP"
    plans = plans_of(clip)
    assert len(plans) == 10 and sum(p.frames for p in plans) == clip.frames == 300
    remuxer = Remuxer()
    for plan in plans:
        out = remuxer.remux(plan)
        check = check_mp4(out.data)
        assert check.frames == plan.frames == out.frames == 30
        assert check.first_pts == 0.0, "timestamps start at 0"
        assert check.duration == pytest.approx(plan.end - plan.start, abs=1e-3) == pytest.approx(2.0, abs=1e-3)
        assert check.fps == pytest.approx(15.0)
    for a, b in zip(plans, plans[1:], strict=False):
        assert a.end == b.start, "chunks are back to back"


def test_ffprobe_reads_the_chunk(clip, tmp_path):
    path = tmp_path / "chunk.mp4"
    path.write_bytes(Remuxer().remux(plans_of(clip)[3]).data)
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                             "stream=codec_name,width,height,avg_frame_rate,nb_read_packets,start_time,duration",
                             "-of", "default=nw=1", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not result.stderr, result.stderr
    fields = dict(line.split("=", 1) for line in result.stdout.split())
    assert fields == {"codec_name": "h264", "width": "640", "height": "360", "avg_frame_rate": "15/1",
                      "start_time": "0.000000", "duration": "2.000000", "nb_read_packets": "30"}


def test_same_plan_same_bytes(clip):
    plan = plans_of(clip)[4]
    first = Remuxer().remux(plan).data
    remuxer = Remuxer()
    remuxer.remux(plans_of(clip)[0])  # a template already cached must not change the result
    assert remuxer.remux(plan).data == first
    assert b"Lavf" not in first, "bitexact: no muxer version written"


def test_audio_is_muxed_beside_the_video(av_clip):
    assert av_clip.audio is not None and av_clip.audio.codec == "aac"
    plans = plans_of(av_clip)
    assert len(plans) == 3
    for plan in plans:
        out = Remuxer().remux(plan)
        check = check_mp4(out.data)
        assert check.frames == plan.frames == 30
        assert out.audio_packets > 0 and check.audio_frames == out.audio_packets
        assert out.audio_dropped <= 1  # at most one packet straddling the chunk start


def test_first_packet_without_pts_is_placed_by_wall_time(clip):
    plan = plans_of(clip)[1]
    packets = (plan.packets[0].model_copy(update={"pts": None, "dts": None}), *plan.packets[1:])
    out = Remuxer().remux(ChunkPlan(plan.camera, plan.info, packets, plan.start, plan.end, plan.ack))
    check = check_mp4(out.data)
    assert check.frames == 30 and check.duration == pytest.approx(2.0, abs=1e-3)


def test_unusable_chunks_raise_remux_error(clip):
    plan = plans_of(clip)[0]
    mjpeg = plan.info.model_copy(update={"video": plan.info.video.model_copy(update={"codec": "mjpeg"})})
    with pytest.raises(RemuxError, match="not supported"):
        Remuxer().remux(ChunkPlan(CAM, mjpeg, plan.packets, plan.start, plan.end, None))
    garbage = plan.info.model_copy(update={"video": plan.info.video.model_copy(update={"extradata": b""})})
    junk = (plan.packets[0].model_copy(update={"data": b"\x00\x00\x00\x01\x09garbage"}),)
    with pytest.raises(RemuxError):
        Remuxer().remux(ChunkPlan(CAM, garbage, junk, plan.start, plan.end, None))


def test_remux_speed(clip):
    plans = plans_of(clip)
    remuxer = Remuxer()
    remuxer.remux(plans[0])
    began = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        for plan in plans:
            remuxer.remux(plan)
    per_chunk = (time.perf_counter() - began) / (rounds * len(plans))
    print(f"remux: {per_chunk * 1e3:.2f} ms per 2 s chunk of 640x360@15 ({1 / per_chunk:.0f} chunks/s)")
    assert per_chunk < 0.05


def test_path_fixture_is_real_footage(camera_clip):
    assert Path(camera_clip).stat().st_size > 100_000
