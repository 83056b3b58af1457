"""Ingest failover, measured as users see it: the gap the segmenter announces in a camera's footage.

Two cases, each repeated `rounds` times on one small test camera (the picture's size does not change the timing):
- `kill -9`: ingest killed under a supervisor, as `spectare up` runs it (same worker id, restarted at once): it
  takes its own lease back. Goal (issue 14): at most 2 s of video lost.
- `node lost`: two ingest workers, the camera's holder killed for good: the other claims the camera once the
  holder's lease has expired. Goal: at most the lease TTL + 2 s.
The killed worker is started again between rounds, so each round begins with the same set of workers.
"""

import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from spectare.core.config import settings_env
from spectare.core.leases import LeaseTable
from spectare.core.registry import CameraRegistry
from spectare.local.process import ManagedProcess
from spectare.local.servers import NatsServer, S3Credentials, SeaweedS3
from spectare.local.supervisor import RestartPolicy, Supervised, Supervisor, service_identity
from spectare.local.testcam import RtspTestCamera
from spectare.schemas import CameraConfig, Gap, Segment, decode_one_of

from .servers import open_bench_bus

CAMERA = "failover"
SEGMENT_SECONDS = 2


class Footage:
    """The camera's Segment and Gap announcements, as they come."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.gaps: list[Gap] = []

    async def on_message(self, msg) -> None:
        item = decode_one_of(msg.data, Segment, Gap)
        if isinstance(item, Segment):
            self.segments.append(item)
        elif item.end is not None:
            self.gaps.append(item)

    async def wait(self, check, timeout_s: float, what: str) -> None:
        for _ in range(int(timeout_s * 10)):
            if check():
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"failover benchmark: no {what} within {timeout_s:.0f} s")

    async def next_gap(self, timeout_s: float) -> float:
        """Seconds of the next gap announced, once recording has resumed after it."""
        gaps, segments = len(self.gaps), len(self.segments)
        await self.wait(lambda: len(self.gaps) > gaps, timeout_s, "gap announced")
        await self.wait(lambda: len(self.segments) >= segments + 2, timeout_s, "recording again")
        gap = self.gaps[gaps]
        assert gap.end is not None
        return gap.end - gap.start


def measure(rounds: int, clip: Path) -> dict:
    return asyncio.run(_measure(rounds, clip))


async def _measure(rounds: int, clip: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-failover-"))
    nats = NatsServer(work / "nats", work / "nats.log")
    s3 = SeaweedS3(work / "s3", work / "s3.log", S3Credentials.generate())
    camera = RtspTestCamera({"cam": clip}, work / "testcam.log")
    processes: list[ManagedProcess] = []
    # Each round is a first crash after a healthy run (`spectare up` restarts those at once); the back-off for a
    # process that keeps crashing is not what is measured, so "healthy" here is a few seconds, not a minute.
    supervisor = Supervisor(RestartPolicy(healthy_after_s=3 * SEGMENT_SECONDS))
    try:
        for server in (nats, s3, camera):
            server.start()
        settings, nc, js = await open_bench_bus(nats, s3, work)
        env = {**settings_env(settings), "SPECTARE_LOG_LEVEL": "WARNING"}
        footage = Footage()
        await nc.subscribe(settings.names.footage(CAMERA), cb=footage.on_message)
        segmenter = ManagedProcess("segmenter", [sys.executable, "-m", "spectare.segmenter"], work / "segmenter.log",
                                   env=env)
        segmenter.start()
        processes.append(segmenter)
        registry = await CameraRegistry.open(js, settings)
        await registry.add(CameraConfig(name=CAMERA, url=camera.url("cam"), detect=False,
                                        segment_seconds=SEGMENT_SECONDS))
        leases = await LeaseTable.open(js, settings, "ingest", "bench-observer")

        ingest = ManagedProcess("ingest", [sys.executable, "-m", "spectare.ingest"], work / "ingest.log",
                                env={**env, **service_identity("ingest")})
        supervisor.start(Supervised("ingest", ingest.start, ingest.alive, ingest.stop))
        polling = asyncio.create_task(_supervise(supervisor))
        await footage.wait(lambda: len(footage.segments) >= 2, 60, "recording")
        killed = []
        for _ in range(rounds):
            await asyncio.sleep(3 * SEGMENT_SECONDS)  # a healthy run before each crash
            ingest.kill()
            killed.append(await footage.next_gap(30))
        polling.cancel()
        supervisor.stop_all()

        workers = {wid: ManagedProcess(f"ingest-{wid}", [sys.executable, "-m", "spectare.ingest"],
                                       work / f"ingest-{wid}.log", env={**env, "SPECTARE_LEASES__WORKER_ID": wid})
                   for wid in ("node-a", "node-b")}
        for worker in workers.values():
            worker.start()
            processes.append(worker)
        await footage.next_gap(60)  # the supervised worker's camera, taken over once its lease expired
        lost = []
        for _ in range(rounds):
            await footage.wait(lambda: len(footage.segments) >= 2, 30, "recording")
            owners = await leases.owners()
            holder = workers[owners[CAMERA]]
            holder.kill()
            lost.append(await footage.next_gap(leases.ttl_s + 30))
            holder.start()
        await nc.close()
        return {"rounds": rounds, "lease_ttl_s": leases.ttl_s,
                "kill9_gap_s": _summary(killed), "node_lost_gap_s": _summary(lost)}
    finally:
        supervisor.stop_all()
        for process in processes:
            process.stop()
        camera.stop()
        s3.stop()
        nats.stop()
        shutil.rmtree(work, ignore_errors=True)


async def _supervise(supervisor: Supervisor) -> None:
    while True:  # as `spectare up` does
        supervisor.poll()
        await asyncio.sleep(0.25)


def _summary(gaps: list[float]) -> dict:
    return {"each": [round(g, 2) for g in gaps], "median": round(statistics.median(gaps), 2),
            "max": round(max(gaps), 2)}
