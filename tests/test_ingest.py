"""The ingest service against a real RTSP camera and a real NATS: what it publishes, how it
reconnects, how workers share cameras."""

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections import defaultdict

import av
import pytest

from spectare.core.leases import LeaseTable
from spectare.core.registry import CameraRegistry
from spectare.ingest.paramsets import annexb
from spectare.ingest.rtsp import RtspSource
from spectare.ingest.source import FfmpegSource
from spectare.local.testcam import RtspTestCamera
from spectare.schemas import CameraConfig, Keyframe, Packet, PacketGroup, StreamInfo

from .helpers import ServiceProcess, eventually
from .rtp_packets import nals_of
from .rtsp_camera import b_frame_camera

SECRET = "cam-Secret-77"


def with_credentials(url: str) -> str:
    return url.replace("rtsp://", f"rtsp://viewer:{SECRET}@")


class MediaTap:
    """Everything published for some cameras, read back from JetStream in stream order."""

    def __init__(self, js, settings):
        self.js, self.names = js, settings.names
        self.infos: list[StreamInfo] = []
        self.packets: dict[str, list[Packet]] = defaultdict(list)
        self.msg_ids: list[tuple[str, str]] = []
        self.groups: list[PacketGroup] = []
        self.sub = None

    async def start(self):
        async def on_msg(msg):
            parsed = self.names.parse(msg.subject)
            if parsed.kind == "info":
                self.infos.append(StreamInfo.decode(msg.data))
            else:
                group = PacketGroup.decode(msg.data)
                self.packets[group.camera].extend(group.packets)
                self.groups.append(group)
                expected = f"{group.camera}:{group.session}:{group.packets[0].seq}"
                self.msg_ids.append(((msg.headers or {}).get("Nats-Msg-Id"), expected))

        self.sub = await self.js.subscribe(self.names.packets("*").replace(".packets", ".*"), cb=on_msg,
                                           ordered_consumer=True, stream=self.names.media_stream)
        return self

    def sessions(self, camera: str) -> dict[str, list[Packet]]:
        by_session: dict[str, list[Packet]] = defaultdict(list)
        for packet in self.packets[camera]:
            by_session[packet.session].append(packet)
        return by_session


async def register(js, settings, name: str, url: str, **fields) -> None:
    registry = await CameraRegistry.open(js, settings)
    await registry.add(CameraConfig(name=name, url=url, **fields))


async def test_publishes_stream_info_packets_and_self_contained_keyframes(js, settings, rtsp_camera, tmp_path):
    tap = await MediaTap(js, settings).start()
    await register(js, settings, "cam1", with_credentials(rtsp_camera.url("cam1")))
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log", SPECTARE_INGEST__INFO_REPEAT_S="2").start()
    try:
        await eventually(lambda: len(tap.packets["cam1"]) >= 60, 20, what="60 packets")
        ingest.stop()
    finally:
        ingest.kill()
    info = tap.infos[0]
    assert len(tap.infos) >= 2 and {i for i in tap.infos} == {info}, "StreamInfo is repeated, unchanged"
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 640, 360)
    assert info.video.fps == pytest.approx(15, abs=0.1)
    packets = tap.packets["cam1"]
    assert {p.session for p in packets} == {info.session}
    assert [p.seq for p in packets] == list(range(len(packets))), "every packet, in order, no holes"
    assert all(msg_id == expected for msg_id, expected in tap.msg_ids)
    # Packets travel in groups: a keyframe alone (it closes chunks: no waiting), the rest up to ~1 s each.
    assert all(len(g.packets) == 1 for g in tap.groups if g.packets[0].keyframe)
    assert all(not p.keyframe for g in tap.groups for p in g.packets[1:])
    assert all(g.packets[-1].wall_time - g.packets[0].wall_time <= 1 + 1 / 15 + 1e-6 for g in tap.groups)
    assert len(tap.groups) < len(packets) / 5
    assert packets[0].keyframe, "a session starts at the camera's first packet, an IDR"
    assert [p.seq for p in packets if p.keyframe][:3] == [0, 15, 30], "1 s GOP at 15 fps"
    steps = [b.wall_time - a.wall_time for a, b in itertools.pairwise(packets)]
    assert steps == pytest.approx([1 / 15] * len(steps), abs=1e-3), "wall time advances by pts"
    assert abs(packets[-1].wall_time - time.time()) < 5

    # Each keyframe decodes on its own: codec parameters travel with it.
    msg = await js.get_last_msg(settings.names.keyframes_stream, settings.names.keyframes("cam1"))
    keyframe = Keyframe.decode(msg.data)
    codec = av.CodecContext.create(keyframe.codec, "r")
    codec.extradata = keyframe.extradata
    frames = codec.decode(av.Packet(keyframe.data))
    assert [(f.width, f.height) for f in frames] == [(640, 360)]
    assert SECRET not in ingest.log
    assert "viewer:***@" in ingest.log
    await tap.sub.unsubscribe()


async def test_camera_that_goes_away_and_comes_back_gets_a_new_session(js, settings, camera_clip, tmp_path):
    camera = RtspTestCamera({"door": camera_clip}, tmp_path / "cam.log").start()
    port = camera.port
    tap = await MediaTap(js, settings).start()
    await register(js, settings, "door", with_credentials(camera.url("door")))
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log",
                            SPECTARE_INGEST__RECONNECT_MAX_S="1").start()
    try:
        await eventually(lambda: len(tap.packets["door"]) >= 30, 20, what="first session")
        camera.stop()
        await asyncio.sleep(4)  # reconnects fail meanwhile
        assert ingest.alive()
        camera = RtspTestCamera({"door": camera_clip}, tmp_path / "cam.log", port=port).start()
        await eventually(lambda: len(tap.sessions("door")) == 2 and len(list(tap.sessions("door").values())[1]) >= 15,
                         25, what="second session")
    finally:
        ingest.stop()
        camera.stop()
    first, second = tap.sessions("door").values()
    assert [p.seq for p in second] == list(range(len(second)))
    assert [i.session for i in tap.infos] == [first[0].session, second[0].session], "StreamInfo opens each session"
    assert second[0].wall_time - first[-1].wall_time >= 3.5, "the outage shows as a jump in wall time"
    outage_lines = [line for line in ingest.log.splitlines() if "retrying with back-off" in line]
    assert len(outage_lines) == 1, "one line per outage, not one per reconnect attempt"
    assert SECRET not in ingest.log
    await tap.sub.unsubscribe()


async def test_unreachable_camera_is_one_clear_line_and_others_still_record(js, settings, rtsp_camera, tmp_path):
    tap = await MediaTap(js, settings).start()
    await register(js, settings, "gone", f"rtsp://admin:{SECRET}@127.0.0.1:9/stream")
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log",
                            SPECTARE_INGEST__RECONNECT_MAX_S="1", SPECTARE_INGEST__OPEN_TIMEOUT_S="2").start()
    try:
        await eventually(lambda: "camera gone: cannot open" in ingest.log, 20, what="error line")
        await register(js, settings, "cam2", rtsp_camera.url("cam2"))
        await eventually(lambda: len(tap.packets["cam2"]) >= 15, 20, what="the other camera recording")
        assert ingest.alive()
    finally:
        ingest.stop()
    lines = [line for line in ingest.log.splitlines() if "camera gone:" in line]
    assert len(lines) == 1, lines
    assert "rtsp://admin:***@127.0.0.1:9/stream" in lines[0]
    assert SECRET not in ingest.log
    await tap.sub.unsubscribe()


async def test_two_workers_share_three_cameras_and_take_over_a_dead_one(js, settings, rtsp_camera, tmp_path):
    tap = await MediaTap(js, settings).start()
    workers = [ServiceProcess("ingest", settings, tmp_path / f"ingest{i}.log", SPECTARE_INGEST__MAX_CAMERAS="3")
               for i in (1, 2)]
    for worker in workers:
        worker.start()
    for name in ("cam1", "cam2", "cam3"):
        await register(js, settings, name, rtsp_camera.url(name))
    leases = await LeaseTable.open(js, settings, "ingest", "observer")
    try:
        owners = await eventually(lambda: _all_owned(leases, 3), 20, what="three cameras leased")
        assert sorted(list(owners.values()).count(w) for w in set(owners.values())) == [1, 2], "spread over both"
        await eventually(lambda: all(len(tap.packets[c]) >= 15 for c in owners), 20, what="all recording")
        # Exactly one worker records each camera: one session per camera so far.
        assert all(len(tap.sessions(c)) == 1 for c in owners)

        victim_id = next(w for w in set(owners.values()) if list(owners.values()).count(w) == 1)
        moved = next(c for c, w in owners.items() if w == victim_id)
        victim = next(w for w in workers if victim_id.split("-")[2] == str(w.proc.pid))
        victim.kill()
        killed_at = time.time()
        new_owners = await eventually(lambda: _moved(leases, moved, victim_id), 20, what="takeover")
        assert new_owners[moved] != victim_id
        await eventually(lambda: len(tap.sessions(moved)) == 2, 10, what="new session for the moved camera")
        old, new = tap.sessions(moved).values()
        failover = new[0].wall_time - killed_at
        assert failover <= leases.ttl_s + 3, f"took {failover:.1f}s"
    finally:
        for worker in workers:
            worker.stop()
    await tap.sub.unsubscribe()


async def _all_owned(leases: LeaseTable, count: int):
    owners = await leases.owners()
    return owners if len(owners) == count else None


async def _moved(leases: LeaseTable, camera: str, old_owner: str):
    owners = await leases.owners()
    return owners if owners.get(camera) not in (None, old_owner) else None


@pytest.mark.parametrize("service", ["ingest", "segmenter"])
def test_service_with_nats_unreachable_exits_with_one_line(service, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTARE_")}
    result = subprocess.run([sys.executable, "-m", f"spectare.{service}"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path,
                            env={**env, "SPECTARE_NATS__URL": "nats://svc:pw123@127.0.0.1:9",
                                 "SPECTARE_NATS__CONNECT_TIMEOUT": "1"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "NATS at nats://svc:***@127.0.0.1:9 is unreachable" in lines[0]
    assert "pw123" not in result.stderr


async def test_wrong_credentials_are_one_clear_line_and_a_fix_takes_effect_live(js, settings, camera_clip, tmp_path):
    camera = RtspTestCamera({"gate": camera_clip}, tmp_path / "cam.log", auth=("admin", SECRET)).start()
    tap = await MediaTap(js, settings).start()
    wrong = camera.url("gate").replace("rtsp://", "rtsp://admin:not-the-Password@")
    await register(js, settings, "gate", wrong)
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log", SPECTARE_INGEST__RECONNECT_MAX_S="1").start()
    try:
        await eventually(lambda: "camera gate: cannot open" in ingest.log, 20, what="the refusal")
        await asyncio.sleep(3)  # several refused attempts meanwhile
        assert tap.packets["gate"] == []
        registry = await CameraRegistry.open(js, settings)
        right = camera.url("gate").replace("rtsp://", f"rtsp://admin:{SECRET}@")
        await registry.put(CameraConfig(name="gate", url=right))
        await eventually(lambda: len(tap.packets["gate"]) >= 15, 20, what="recording with the right password")
    finally:
        ingest.stop()
        camera.stop()
    refusals = [line for line in ingest.log.splitlines() if "camera gate: cannot open" in line]
    assert len(refusals) == 1, refusals
    assert "rtsp://admin:***@127.0.0.1" in refusals[0]
    assert "refused the credentials (401 Unauthorized)" in refusals[0]
    assert SECRET not in ingest.log and "not-the-Password" not in ingest.log
    await tap.sub.unsubscribe()


async def read_packets(source, count: int) -> list:
    try:
        return [await source.next() for _ in range(count)]
    finally:
        await source.close()


async def test_spectare_and_ffmpeg_rtsp_clients_hand_out_the_same_packets(rtsp_camera):
    url = rtsp_camera.url("cam1")  # each client gets the clip from its first frame
    ours = await RtspSource.open(url, 5, 5, 0.1)
    theirs = await FfmpegSource.open(url, 5, 5, 32768)
    assert (ours.info.codec, ours.info.width, ours.info.height) == (theirs.info.codec, 640, 360)
    assert ours.info.extradata == theirs.info.extradata and ours.info.time_base == theirs.info.time_base
    assert ours.info.fps == pytest.approx(15.0)
    mine, ffmpegs = await asyncio.gather(read_packets(ours, 45), read_packets(theirs, 45))
    assert [p.data for p in mine] == [p.data for p in ffmpegs]
    assert [p.keyframe for p in mine] == [p.keyframe for p in ffmpegs] and sum(p.keyframe for p in mine) == 3
    timed = [(a.pts, b.pts) for a, b in zip(mine, ffmpegs, strict=True) if b.pts is not None]  # FFmpeg's first lack pts
    assert len(timed) >= 40
    assert [a - timed[0][0] for a, _ in timed] == [b - timed[0][1] for _, b in timed]



async def test_camera_with_b_frames_is_read_by_spectares_client_with_derived_decode_times(js, settings, tmp_path):
    camera = await b_frame_camera(tmp_path)  # x264 -bf 2: IBBP, RTP timestamps in presentation order
    tap = await MediaTap(js, settings).start()
    await register(js, settings, "lobby", camera.url())
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log", SPECTARE_INGEST__RECONNECT_MAX_S="1").start()
    try:
        await eventually(lambda: len(tap.packets["lobby"]) >= 45, 30, what="recording")
    finally:
        ingest.stop()
        await camera.stop()
    assert "FFmpeg" not in ingest.log and len(tap.sessions("lobby")) == 1, "one session, Spectare's client"
    packets = tap.packets["lobby"]
    assert [p.data for p in packets[:len(camera.units)]] == [annexb(nals_of(u)) for u in camera.units]
    assert [p.pts - packets[0].pts for p in packets[:len(camera.units)]] == camera.offsets
    dts = [p.dts for p in packets]
    assert all(b > a for a, b in zip(dts, dts[1:], strict=False)) and all(p.dts <= p.pts for p in packets)
    assert [b - a for a, b in zip(dts, dts[1:len(camera.units)], strict=False)] == [3003] * (len(camera.units) - 1)
    await tap.sub.unsubscribe()
