"""B-frame cameras recorded end to end: real cameras (GStreamer's RTSP server with x264's default B-frames, the
scripted camera with x265's hierarchical B-frames, and both without), real ingest and segmenter processes, real
NATS and S3. Every chunk, a session's first included, decodes with no error line (`ffmpeg -v error`), through
both RTSP clients, across a camera reconnect and kill -9 of ingest and of the segmenter."""

import subprocess
from pathlib import Path

import av
import pytest

from spectare.core.store import s3_client
from spectare.ingest.reorder import DecodeTimes, declared_depth
from spectare.ingest.rtsp import RtspSource
from spectare.ingest.source import FfmpegSource
from spectare.ingest.timing import RawPacket
from spectare.local.testcam import RtspTestCamera, _ffmpeg, make_test_clip
from spectare.schemas import PacketGroup, Segment
from spectare.segmenter.chunker import Chunker, CloseChunk
from spectare.segmenter.remux import Remuxer

from .helpers import eventually
from .media import source_video
from .packets import check_mp4, load_clip, plans_of
from .rtsp_camera import ScriptedRtspCamera, b_frame_camera, hevc_units
from .test_recording import Pipeline, _when, everything_recorded, register, segments_of


@pytest.fixture
def pipeline(settings, tmp_path):
    p = Pipeline(settings, tmp_path)
    yield p
    p.stop_all()


@pytest.fixture(scope="module")
def x264_default_clip(tmp_path_factory) -> Path:
    """x264's default B-frames (3, pyramid, adaptive) in a camera-shaped clip: 640x360, 15 fps, 1 s GOP."""
    return make_test_clip(source_video(), tmp_path_factory.mktemp("bclips") / "x264-bf3.mp4", width=640, height=360,
                          fps=15, gop_seconds=1, seconds=8, bframes=3)


def check_chunk(data: bytes, path: Path, key: str, frames: int, b_frames: bool) -> None:
    """The chunk decodes with ffmpeg with no error line, every frame of it; B-frames shown in their own order."""
    path.write_bytes(data)
    result = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, ""), f"{key}: ffmpeg says {result.stderr[:500]}"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        decoded = sum(len(stream.codec_context.decode(p)) for p in packets) + len(stream.codec_context.decode(None))
    assert len(packets) == decoded == frames, f"{key}: {len(packets)} samples, {decoded} decoded, {frames} sent"
    dts, pts = [p.dts for p in packets], [p.pts for p in packets]
    assert all(b > a for a, b in zip(dts, dts[1:], strict=False)), f"{key}: dts {dts[:12]}"
    assert all(p >= d for p, d in zip(pts, dts, strict=True)), f"{key}: a frame shown before it is decoded"
    if b_frames and frames >= 8:  # more than a mini-GOP (a session cut off just after a keyframe has less)
        assert sorted(pts) != pts, f"{key}: no reordered frame"
    elif not b_frames:
        assert pts == dts, f"{key}: composition offsets in a stream without B-frames"


def check_all(settings, segments: list[Segment], tmp_path: Path, b_frames: bool) -> None:
    assert len({s.session for s in segments}) >= 3, "the first session, after kill -9 of ingest, after a reconnect"
    client = s3_client(settings.s3)
    for segment in segments:
        data = client.get_object(settings.s3.bucket, segment.key).read()
        check_chunk(data, tmp_path / "chunk.mp4", segment.key, segment.frames, b_frames)


async def sessions(js, settings, camera: str, count: int, chunks_in_last: int = 2) -> None:
    def enough(found: list[Segment]) -> bool:
        by_session = [s.session for s in sorted(found, key=lambda s: s.start)]
        return len(set(by_session)) >= count and by_session.count(by_session[-1]) >= chunks_in_last

    await eventually(lambda: _when(segments_of(js, settings, camera), enough), 60,
                     what=f"{count} sessions of {camera} recorded")


async def record_through_crashes(js, settings, pipeline, camera: str, url: str, restart_camera, client: str) -> list:
    """Sessions: the first; one after kill -9 of ingest; one after the camera went away and came back; with the
    segmenter killed -9 in the middle. Returns every chunk once the camera's packets are all in chunks."""
    env = {"SPECTARE_INGEST__RTSP_CLIENT": client, "SPECTARE_INGEST__RECONNECT_MAX_S": "1"}
    await register(js, settings, camera, url, segment_seconds=2)
    ingest = pipeline.start("ingest", "ingest-1", **env)
    segmenter = pipeline.start("segmenter", "segmenter-1")
    await sessions(js, settings, camera, 1)
    ingest.kill()
    ingest = pipeline.start("ingest", "ingest-2", **env)
    await sessions(js, settings, camera, 2, chunks_in_last=1)
    segmenter.kill()
    pipeline.start("segmenter", "segmenter-2")
    await restart_camera()
    await sessions(js, settings, camera, 3)
    ingest.stop()
    assert "FFmpeg" not in ingest.log or client == "ffmpeg", "Spectare's client reads B-frame cameras itself"
    return await everything_recorded(js, settings, camera, 30)


@pytest.mark.integration
@pytest.mark.parametrize("client", ["spectare", "ffmpeg"])
@pytest.mark.parametrize("b_frames", [True, False], ids=["x264-defaults", "no-b-frames"])
async def test_gstreamer_camera_chunks_decode_cleanly(js, settings, pipeline, tmp_path, x264_default_clip,
                                                      camera_clip, client, b_frames):
    clip = x264_default_clip if b_frames else camera_clip
    camera = RtspTestCamera({"porch": clip}, tmp_path / "cam.log").start()
    port = camera.port

    async def restart():
        nonlocal camera
        camera.stop()
        camera = RtspTestCamera({"porch": clip}, tmp_path / "cam.log", port=port).start()

    try:
        segments = await record_through_crashes(js, settings, pipeline, "porch", camera.url("porch"), restart, client)
    finally:
        camera.stop()
    check_all(settings, segments, tmp_path, b_frames)


@pytest.mark.integration
async def test_b_frame_camera_with_aac_records_both_tracks_cleanly(js, settings, pipeline, tmp_path,
                                                                   x264_default_clip):
    camera = RtspTestCamera({"porch": x264_default_clip}, tmp_path / "cam.log", audio="aac").start()
    try:
        await register(js, settings, "porch", camera.url("porch"), segment_seconds=2)
        ingest = pipeline.start("ingest")
        pipeline.start("segmenter")
        await sessions(js, settings, "porch", 1, chunks_in_last=3)
        ingest.stop()
        sent = await video_packet_count(js, settings, "porch")
        segments = await eventually(
            lambda: _when(segments_of(js, settings, "porch"), lambda s: sum(x.frames for x in s) >= sent), 30,
            what=f"all {sent} frames in chunks")
    finally:
        camera.stop()
    assert sum(s.frames for s in segments) == sent
    client = s3_client(settings.s3)
    for segment in sorted(segments, key=lambda s: s.start)[:-1]:  # the last: what came before the stop, maybe a frame
        path = tmp_path / "chunk.mp4"
        check_chunk(client.get_object(settings.s3.bucket, segment.key).read(), path, segment.key, segment.frames,
                    True)
        with av.open(str(path)) as container:
            assert [s.type for s in container.streams] == ["video", "audio"], segment.key
            assert sum(1 for p in container.demux(audio=0) if p.size) > 0, f"{segment.key}: audio"


async def video_packet_count(js, settings, camera: str) -> int:
    """Video packets ingest published for the camera (audio travels in the same groups)."""
    count = 0
    sub = await js.subscribe(settings.names.packets(camera), ordered_consumer=True)
    try:
        while True:
            try:
                msg = await sub.next_msg(1.0)
            except TimeoutError:
                return count
            count += sum(1 for p in PacketGroup.decode(msg.data).packets if p.track == "video")
    finally:
        await sub.unsubscribe()


class DroppingCamera(ScriptedRtspCamera):
    """The scripted camera, able to drop its clients' connections (as a camera that reboots does)."""

    async def start(self) -> "DroppingCamera":
        self.writers: set = set()
        await super().start()
        return self

    async def _client(self, reader, writer) -> None:
        self.writers.add(writer)
        try:
            await super()._client(reader, writer)
        finally:
            self.writers.discard(writer)

    async def drop_clients(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()


@pytest.mark.integration
@pytest.mark.parametrize("client", ["spectare", "ffmpeg"])
@pytest.mark.parametrize("b_frames", [True, False], ids=["x265-hierarchical", "no-b-frames"])
async def test_scripted_h265_camera_chunks_decode_cleanly(js, settings, pipeline, tmp_path, client, b_frames):
    units, offsets = hevc_units(tmp_path, b_frames)
    camera = await DroppingCamera("hevc", units, 30, offsets=offsets).start()
    try:
        segments = await record_through_crashes(js, settings, pipeline, "lobby", camera.url(), camera.drop_clients,
                                                client)
    finally:
        await camera.stop()
    check_all(settings, segments, tmp_path, b_frames)


@pytest.mark.integration
async def test_gstreamer_camera_sends_b_frames_in_decode_order_stamped_with_presentation_times(x264_default_clip,
                                                                                             tmp_path):
    with av.open(str(x264_default_clip)) as container:
        stream = container.streams.video[0]
        file_pts = [p.pts for p in container.demux(stream) if p.size]
        tick = stream.time_base * 15  # frames
    camera = RtspTestCamera({"cam": x264_default_clip}, tmp_path / "cam.log").start()
    try:
        source = await RtspSource.open(camera.url("cam"), 5, 5, 0.1)
        try:
            assert declared_depth(source.info.codec, source.info.extradata) == 2
            packets = [await source.next() for _ in range(len(file_pts) + 30)]  # once round, and on
        finally:
            await source.close()
    finally:
        camera.stop()
    shown = [round((p.pts - packets[0].pts) / 6000) for p in packets]
    in_file = [round((t - file_pts[0]) * tick) for t in file_pts]
    assert shown[:len(in_file)] == in_file
    assert shown[len(in_file):] == [t + len(in_file) for t in in_file[:30]], "the loop runs on, still reordered"
    assert "B-frame reorder depth 2" in (tmp_path / "cam.log").read_text()


@pytest.mark.integration  # the scripted camera is a real RTSP server on loopback
async def test_ffmpeg_path_times_b_frames(tmp_path):
    """FFmpeg's RTSP demuxer gives the first packets no pts or dts; the same derivation as Spectare's client's
    places them, so the session's first GOP is timed like every later one."""
    camera = await b_frame_camera(tmp_path)
    source = await FfmpegSource.open(camera.url(), 5, 5, 32768)
    try:
        raw: list[RawPacket] = [await source.next() for _ in range(len(camera.units) + 12)]
    finally:
        await source.close()
        await camera.stop()
    assert raw[0].pts is None, "what FFmpeg gives for the first packet (the reason this exists)"
    clock = DecodeTimes(1, 3003)  # -bf 2: IBBP
    out = [p for packet in raw for p in clock.push(packet)]
    first_lap = out[:len(camera.offsets)]
    assert [p.pts - out[0].pts for p in first_lap] == camera.offsets
    dts = [p.dts for p in first_lap]
    assert [b - a for a, b in zip(dts, dts[1:], strict=False)] == [3003] * (len(dts) - 1)
    assert all(p.dts <= p.pts for p in out)


# -- the segmenter's side, on the packets of a real x264 B-frame clip (pure: no server) --------------------------

def test_b_frame_chunks_are_cut_at_keyframes_and_keep_their_composition_offsets(x264_default_clip):
    clip = load_clip(x264_default_clip)
    plans = plans_of(clip)
    assert len(plans) == 4 and sum(p.frames for p in plans) == clip.frames == 120
    for plan in plans:
        video = [p for p in plan.packets if p.track == "video"]
        assert video[0].keyframe and sum(p.keyframe for p in video) == 2, "cut at a keyframe in decode order"
        assert min(p.wall_time for p in video) == plan.start, "the keyframe is shown first (closed GOP)"
        check = check_mp4(Remuxer().remux(plan).data)
        assert check.frames == plan.frames == 30
        assert check.duration == pytest.approx(plan.end - plan.start, abs=1e-3) == pytest.approx(2.0, abs=1e-3)
        assert check.first_pts == pytest.approx(2 / 15), "shown after the 2 frames of reorder delay (no edit list)"
    for a, b in zip(plans, plans[1:], strict=False):
        assert a.end == b.start


def test_chunk_closed_mid_mini_gop_ends_after_its_last_shown_frame(x264_default_clip):
    clip = load_clip(x264_default_clip)
    info = clip.stream_info("cam", "s1", 1000.0)
    packets = clip.session_packets("cam", "s1", 1000.0)
    # Cut where the last frame decoded is not the last shown: x264's pyramid decodes P4 before B2, b1.
    cut = next(i for i in range(2, 30) if packets[i].wall_time < max(p.wall_time for p in packets[:i]))
    chunker = Chunker("cam", 10, 5, now=0.0)
    chunker.on_info(info, 0)
    for i, packet in enumerate(packets[:cut + 1], start=1):
        chunker.on_packet(packet, i)
    (plan,) = [a.plan for a in chunker.tick(1) + chunker.tick(10) if isinstance(a, CloseChunk)]
    assert plan.end == pytest.approx(max(p.wall_time for p in plan.packets) + 1 / 15)
    check = check_mp4(Remuxer().remux(plan).data)
    assert check.frames == cut + 1
    assert check.duration == pytest.approx(plan.end - plan.start, abs=1e-3)
