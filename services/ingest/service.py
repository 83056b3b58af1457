"""The ingest worker: claims cameras (role `ingest`) and runs a CameraIngest for each."""

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict

from spectare.core.bus import open_bucket
from spectare.core.leases import Lease
from spectare.core.live import LiveMarks, follow_live_marks
from spectare.core.memory import keep_large_blocks
from spectare.core.metrics import register_stats
from spectare.core.service import ServiceContext, run_section_service
from spectare.core.worker import CameraWorker
from spectare.schemas import CameraConfig

from .camera import CameraIngest
from .settings import IngestSettings

log = logging.getLogger(__name__)

METRICS = {
    "packets": "encoded packets received from cameras and published",
    "bytes": "bytes of encoded video received from cameras",
    "reconnects": "RTSP sessions started again after one ended",
    "connect_errors": "failed attempts to open a camera's stream",
    "sessions_ended": "RTSP sessions that ended (camera gone, stalled, or refused)",
}


async def serve(ctx: ServiceContext, ingest: IngestSettings) -> None:
    counters: defaultdict[str, Counter] = defaultdict(Counter)  # per camera
    register_stats("ingest", lambda: {camera: dict(tallies) for camera, tallies in list(counters.items())}, METRICS)

    live = LiveMarks()
    follower = asyncio.create_task(follow_live_marks(await open_bucket(ctx.js, ctx.settings,
                                                                       ctx.settings.names.live_bucket), live))

    async def run_camera(config: CameraConfig, lease: Lease) -> None:
        await CameraIngest(ctx.js, ctx.settings, ingest, config, lease, counters[config.name], live,
                           worker.worker_id).run()

    # Only a new URL or audio setting needs a new RTSP session: detection settings must not cut the recording.
    worker = CameraWorker(ctx.js, ctx.settings, "ingest", run_camera, ingest.max_cameras,
                          restart_on=frozenset({"url", "audio"}))
    try:
        await worker.run(ctx.stop)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    log.info("ingest totals: %s", dict(sum(counters.values(), Counter())))


def main() -> None:
    keep_large_blocks()  # every second each camera's packet group and keyframe are encoded into fresh buffers
    run_section_service("ingest", IngestSettings.load, serve)
