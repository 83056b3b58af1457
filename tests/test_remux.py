"""Remuxing real packets (a clip cut from the demo footage, made Annex-B as RTSP delivers it) into fragmented MP4
chunks: every chunk decodes on its own, has the right frames and duration, one fragment per GOP, and the same plan
gives the same bytes."""

import subprocess
import time
from pathlib import Path

import pytest

from spectare.media.fmp4 import boxes, split
from spectare.segmenter.chunker import ChunkPlan
from spectare.segmenter.remux import Remuxer, RemuxError

from .packets import Clip, check_mp4, load_clip, plans_of, with_tone

CAM = "cam1"


@pytest.fixture(scope="module")
def clip(camera_clip) -> Clip:
    return load_clip(camera_clip)


@pytest.fixture(scope="module")
def av_clip(camera_clip, tmp_path_factory) -> Clip:
    """The camera clip with an AAC track beside it."""
    return load_clip(with_tone(camera_clip, tmp_path_factory.mktemp("avclip") / "av.mp4"))


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


def test_chunks_are_fragmented_one_fragment_per_gop(clip, av_clip):
    for plan in plans_of(clip)[:2] + plans_of(av_clip)[:2]:
        data = Remuxer().remux(plan).data
        gops = sum(1 for p in plan.packets if p.track == "video" and p.keyframe)
        assert gops == 2
        assert [b.type for b in boxes(data)] == ["ftyp", "moov"] + ["moof", "mdat"] * gops + ["mfra"]
        init, media = split(data)
        assert data.startswith(init + media) and [b.type for b in boxes(init)] == ["ftyp", "moov"]
        # Nothing needs seeking: it decodes from a pipe, as a player streaming it would read it.
        piped = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "mp4", "-i", "pipe:0", "-f", "null", "-"],
                               input=data, capture_output=True, timeout=60)
        assert piped.returncode == 0 and not piped.stderr, piped.stderr.decode()


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
