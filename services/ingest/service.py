"""The ingest worker: claims cameras (role `ingest`) and runs a CameraIngest for each."""

import logging
from collections import Counter

from spectare.core.leases import Lease
from spectare.core.service import ServiceContext, run_service
from spectare.core.worker import CameraWorker
from spectare.schemas import CameraConfig

from .camera import CameraIngest
from .settings import IngestSettings

log = logging.getLogger(__name__)


async def serve(ctx: ServiceContext) -> None:
    ingest = IngestSettings.load()
    counters: Counter = Counter()

    async def run_camera(config: CameraConfig, lease: Lease) -> None:
        await CameraIngest(ctx.js, ctx.settings, ingest, config, lease, counters).run()

    # Only a new URL needs a new RTSP session: detection settings must not cut the recording.
    worker = CameraWorker(ctx.js, ctx.settings, "ingest", run_camera, ingest.max_cameras,
                          restart_on=frozenset({"url"}))
    await worker.run(ctx.stop)
    log.info("ingest totals: %s", dict(counters))


def main() -> None:
    run_service("ingest", serve)
