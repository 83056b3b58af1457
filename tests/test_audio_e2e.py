"""Audio with the video end to end, where the two meet: B-frame cameras with audio (the GStreamer test camera with
x264's default B-frames and AAC, the scripted camera with x265's B-frames and G.711), kill -9 of ingest and of the
segmenter on an AAC camera, and the A/V offset of cameras whose picture flashes as they beep, measured on the chunks
(`python -m bench avsync`, for a minute).
Real cameras, real ingest and segmenter processes, real NATS and S3.

"Audio and video start within one frame" is checked on what a player sees: the first audio frame as the chunk holds
it, after undoing the mp4 muxer's move of it to the chunk's time 0 (a fragmented MP4 has no edit list to say that
audio starts later), which would otherwise make every chunk's audio start at 0."""

import asyncio
import io
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest

from bench.avsync import offsets as avsync_offsets
from bench.avsync import record as avsync_record
from bench.avsync import sync_camera, sync_clip
from spectare.core.config import settings_env
from spectare.core.store import s3_client
from spectare.ingest.reorder import DecodeTimes
from spectare.ingest.timing import RawPacket, SessionClock
from spectare.local.process import ManagedProcess
from spectare.local.supervisor import Supervised, Supervisor, service_identity
from spectare.local.testcam import RtspTestCamera
from spectare.media.clips import ChunkFile, export_clip
from spectare.segmenter.remux import Remuxer

from .helpers import eventually
from .packets import load_clip, plans_of, with_tone
from .rtsp_camera import ScriptedRtspCamera, hevc_units
from .test_audio import audio_gaps, decode_errors, record
from .test_bframes import x264_default_clip  # noqa: F401 - the fixture
from .test_failover import KILL_GAP_S
from .test_recording import FRAME, Pipeline, _when, gaps_of, register, segments_of

AAC_48K, AAC_8K = 1024 / 48000, 1024 / 8000  # one AAC frame: the camera's AAC, G.711 transcoded
# Presentation order of frames in decode order: x264's defaults (3 B-frames, pyramid: reorder depth 2), and IBBP.
PYRAMID = [0, 4, 2, 1, 3, 8, 6, 5, 7, 12, 10, 9, 11]
IBBP = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8]


def sent_by_relay(n: int, order: list[int]) -> float:
    return n / 15  # each frame sent at its decode time (the GStreamer test camera, a server replaying a file)


def sent_by_camera(n: int, order: list[int]) -> float:
    return max(order[:n + 1]) / 15 + 0.08  # each frame sent once the frame shown last so far is captured, encoded


# -- where the picture and the sound are placed (pure) ---------------------------------------------------------

@pytest.mark.parametrize(("order", "depth", "sent"), [(PYRAMID, 2, sent_by_relay), (PYRAMID, 2, sent_by_camera),
                                                      (IBBP, 1, sent_by_relay), (IBBP, 1, sent_by_camera)])
def test_a_b_frame_session_is_anchored_at_its_first_frame_as_its_audio_is_at_its_first_unit(order, depth, sent):
    """Audio's wall time starts at its first unit's receipt; the video's must start at its first frame's, not at
    the frame that ends the opening window (P8 of the pyramid: sent 3 frames ahead of its time by a relay; B2 of
    IBBP: a frame after it by a camera)."""
    clock = SessionClock(Fraction(1, 90000), 6000, DecodeTimes(depth, 6000).push)
    out = [p for n, shown in enumerate(order)
           for p in clock.push(RawPacket(shown * 6000, None, 6000, n == 0, b"x", 1000 + sent(n, order)))]
    assert [round((p.wall_time - out[0].wall_time) * 15, 6) for p in out] == order
    assert out[0].wall_time == pytest.approx(1000 + sent(0, order)), "shown when its first frame came"


def test_b_frame_chunks_place_their_audio_on_the_pictures_timeline(x264_default_clip, tmp_path):  # noqa: F811
    """A B-frame chunk shows its first frame after the reorder delay (2 frames): the sound of that instant is
    there too, not at 0."""
    clip = load_clip(with_tone(x264_default_clip, tmp_path / "tone.mp4"))
    for plan in plans_of(clip):
        audio = [p for p in plan.packets if p.track == "audio" and p.wall_time >= plan.start]  # AAC's priming: not
        with av.open(io.BytesIO(Remuxer().remux(plan).data)) as container:
            packets = [(p.stream.type, float(p.pts * p.time_base)) for p in container.demux() if p.size]
        shown = min(t for kind, t in packets if kind == "video")
        placed = [t for kind, t in packets if kind == "audio"]
        assert shown == pytest.approx(2 / 15, abs=1e-3)
        assert len(placed) == len(audio)
        # the first audio frame is moved to 0 by the muxer (no edit list in a fragmented MP4); the others:
        assert placed[1:] == pytest.approx([shown + p.wall_time - plan.start for p in audio[1:]], abs=1e-3)


# -- real cameras ------------------------------------------------------------------------------------------------


@pytest.fixture
def pipeline(settings, tmp_path):
    p = Pipeline(settings, tmp_path)
    yield p
    p.stop_all()


def track_times(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Each track's packets as (start, duration) seconds in presentation order, the first audio frame where it
    was before the muxer moved it to 0 (and lengthened it by as much)."""
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        frame = (audio.codec_context.frame_size or 1024) / audio.codec_context.sample_rate
        times: dict[str, list[tuple[float, float]]] = {"video": [], "audio": []}
        for packet in container.demux():
            if packet.size and packet.pts is not None:
                times[packet.stream.type].append((float(packet.pts * packet.time_base),
                                                  float(packet.duration * packet.time_base)))
    start, duration = times["audio"][0]
    if duration > frame * 1.01:
        times["audio"][0] = (start + duration - frame, frame)
    return {kind: sorted(t) for kind, t in times.items()}


def starts_in_step(times: dict[str, list[tuple[float, float]]], frame: float, audio_frame: float) -> float:
    """Seconds from the first picture to the first sound: the audio frame that starts with it or just after it
    (one that straddles a chunk's first frame is the previous chunk's), so within one frame and one audio frame."""
    lag = times["audio"][0][0] - times["video"][0][0]
    assert -1e-3 <= lag <= max(frame, audio_frame) + 1e-3, f"audio starts {lag * 1000:.1f} ms after the video"
    return lag


def check_chunk(path: Path, frame: float, audio_frame: float) -> float:
    """Both tracks, AAC; no decode error line; audio and video start (`starts_in_step`) and end within one frame and
    one audio frame of each other; the audio continuous (each frame within half a frame of the last one's end).
    Returns the audio's lag at the start, in seconds."""
    assert decode_errors(path) == (0, ""), path.name
    with av.open(str(path)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"], path.name
        assert container.streams.audio[0].codec_context.name == "aac"
    times = track_times(path)
    video, audio = times["video"], times["audio"]
    lag = starts_in_step(times, frame, audio_frame)
    video_end, audio_end = video[-1][0] + video[-1][1], audio[-1][0] + audio[-1][1]
    assert abs(video_end - audio_end) <= frame + audio_frame, f"{path.name}: audio ends {audio_end}, video {video_end}"
    gaps = audio_gaps(path)[1:]  # after the first frame (moved by the muxer)
    assert max(gaps) <= audio_frame / 2 and min(gaps) >= -audio_frame / 2, f"{path.name}: audio gaps {gaps}"
    return lag


def check_seams(files: list[ChunkFile], frame: float, audio_frame: float, tmp_path: Path) -> None:
    """A clip across every seam, from mid-first to mid-last chunk: both tracks, clean, starting in step, the audio
    continuous up to the clip's end. (Its video may run on a few frames: B-frames decoded before the end and shown
    after it.)"""
    end = files[-1].end - 1.5
    clip = export_clip(files, files[0].start + 1.5, end, tmp_path / "clip.mp4")
    assert clip.chunks == len(files)
    assert decode_errors(clip.path) == (0, "")
    times = track_times(clip.path)
    starts_in_step(times, frame, audio_frame)
    gaps = audio_gaps(clip.path)
    assert max(gaps) <= audio_frame and min(gaps) >= -audio_frame, f"the clip's audio at the seams: {gaps}"
    audio_last, audio_duration = times["audio"][-1]
    assert audio_last + audio_duration == pytest.approx(end - clip.start, abs=audio_frame), "sound to the end"


@pytest.mark.integration  # the scripted camera is a real RTSP server on loopback
async def test_h265_b_frame_camera_with_g711_keeps_both_tracks_in_step(js, settings, pipeline, tmp_path):
    """The scripted camera with x265's hierarchical B-frames (30 fps) and G.711, transcoded to AAC at 8 kHz: its
    frames last 128 ms, so a chunk's sound starts up to that long after its first picture (the frame that
    straddles the cut is the previous chunk's)."""
    units, offsets = hevc_units(tmp_path)  # x265's hierarchical B-frames, 30 fps
    camera = await ScriptedRtspCamera("hevc", units, 30, offsets=offsets, audio="pcmu").start()
    try:
        files = await record(js, settings, pipeline, "lobby", camera.url(), 3, tmp_path)
    finally:
        await camera.stop()
    for chunk in files:
        check_chunk(chunk.path, 1 / 30, AAC_8K)
    check_seams(files, 1 / 30, AAC_8K, tmp_path)


# -- kill -9 -----------------------------------------------------------------------------------------------------

async def test_aac_camera_chunks_keep_their_audio_through_kill_9_of_ingest_and_the_segmenter(js, settings, pipeline,
                                                                                            tmp_path,
                                                                                            x264_default_clip):  # noqa: F811
    """The camera of the report (x264's default B-frames, AAC): ingest killed -9 under the supervisor (as `spectare
    up` runs it), then the segmenter killed -9 and started again. Every chunk has both tracks in step and decodes
    cleanly, a clip across the seams has continuous sound; the one gap, announced, is at most 2 s; the segmenter's
    restart costs none."""
    camera = RtspTestCamera({"porch": x264_default_clip}, tmp_path / "cam.log", audio="aac")
    ingest = ManagedProcess("ingest", [sys.executable, "-m", "spectare.ingest"], tmp_path / "ingest.log",
                            env={**settings_env(settings), **service_identity("ingest"), "SPECTARE_LOG_LEVEL": "DEBUG"})
    supervisor = Supervisor()

    async def supervise() -> None:  # as `spectare up` does
        while True:
            supervisor.poll()
            await asyncio.sleep(0.25)

    def chunks(count: int, sessions: int):
        return lambda: _when(segments_of(js, settings, "porch"),
                             lambda found: len(found) >= count and len({s.session for s in found}) >= sessions)

    polling = asyncio.create_task(supervise())
    try:
        camera.start()
        await register(js, settings, "porch", camera.url("porch"), segment_seconds=2)
        pipeline.start("segmenter", "segmenter-1")
        supervisor.start(Supervised("ingest", ingest.start, ingest.alive, ingest.stop))
        recorded = len(await eventually(chunks(2, 1), 60, what="recording"))
        ingest.kill()
        before_segmenter = len(await eventually(chunks(recorded + 2, 2), 60, what="recording again"))
        pipeline.processes[0].kill()
        pipeline.start("segmenter", "segmenter-2")
        segments = await eventually(chunks(before_segmenter + 3, 2), 60, what="chunks after the segmenter's restart")
        gaps = await eventually(lambda: _when(gaps_of(js, settings, "porch"), lambda g: g and all(x.end for x in g)),
                                30, what="the gap announced")
    finally:
        polling.cancel()
        supervisor.stop_all()
        camera.stop()
    (gap,) = gaps
    print(f"\ningest kill -9 under the supervisor: announced gap {gap.end - gap.start:.2f}s")
    assert gap.end - gap.start <= KILL_GAP_S + FRAME
    ordered = sorted(segments, key=lambda s: s.start)
    sessions = [s.session for s in ordered]
    first = sessions.index(sessions[-1])  # chunks before the kill (the last one closed at the new session)
    assert len(set(sessions)) == 2 and set(sessions[:first]) == {sessions[0]}, "one session before the kill, one after"
    assert gap.start == pytest.approx(ordered[first - 1].end, abs=FRAME)
    assert gap.end == pytest.approx(ordered[first].start, abs=FRAME)
    for a, b in zip(ordered[first:], ordered[first + 1:], strict=False):
        assert b.start == pytest.approx(a.end, abs=FRAME), "the segmenter's restart lost nothing"
    client = s3_client(settings.s3)
    lags = []
    files = []
    for i, segment in enumerate(ordered):
        path = tmp_path / f"chunk-{i}.mp4"
        path.write_bytes(client.get_object(settings.s3.bucket, segment.key).read())
        files.append(ChunkFile(path, segment.start, segment.end))
        if i == first - 1:  # cut by the kill: what ingest held back (audio waits for the video to reach it) died
            assert decode_errors(path) == (0, ""), path.name
            continue
        lags.append(check_chunk(path, FRAME, AAC_48K))
    print("audio after the first picture, per chunk (ms):", " ".join(str(round(lag * 1000)) for lag in lags))
    check_seams(files[first:], FRAME, AAC_48K, tmp_path)  # across the segmenter's restart too


# -- A/V offset over a recording -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def flashing_clip(tmp_path_factory) -> Path:
    return sync_clip(tmp_path_factory.mktemp("avsync") / "sync.mp4")


async def test_the_sound_stays_within_a_frame_of_the_picture(js, settings, pipeline, tmp_path, flashing_clip):
    """`python -m bench avsync` for a minute: cameras that flash and beep at once, AAC copied and G.711
    transcoded, recorded side by side; every beep within one frame of its flash, no drift over the minute."""
    cameras = {f"sync-{kind}": sync_camera(kind, flashing_clip, tmp_path / f"cam-{kind}.log").start()
               for kind in ("aac", "pcmu")}
    try:
        pipeline.start("ingest")
        pipeline.start("segmenter")
        chunks = await avsync_record(js, settings, {name: cam.url("sync") for name, cam in cameras.items()}, 60,
                                     tmp_path / "chunks")
    finally:
        for camera in cameras.values():
            camera.stop()
    for name, files in chunks.items():
        found = avsync_offsets(files)
        summary = found.summary()
        print(f"\n{name}: {summary}")
        assert summary["marks"] >= 18 and found.unpaired == 0, "every flash has its beep"
        assert all(abs(offset) <= FRAME for _, offset in found.marks), f"{name}: {found.marks}"
        assert abs(summary["drift_ms"]) < 1000 * FRAME
