"""`spectare up | down | status | testcam`: the embedded local stack and its pieces."""

import asyncio
import os
import time
from pathlib import Path

import click

from spectare.core.config import DEFAULT_STATE_DIR, load_settings
from spectare.core.health import check_all
from spectare.core.logs import setup_logging
from spectare.local.stack import LocalStack, StackOptions, describe, stop_running
from spectare.local.testcam import RtspTestCamera

from .common import print_json

_PORT = click.IntRange(1, 65535)


def _state_dir() -> Path:
    return Path(os.environ.get("SPECTARE_STATE_DIR", DEFAULT_STATE_DIR))


def _set_state_dir(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        os.environ["SPECTARE_STATE_DIR"] = str(value)


# `spectare up --state-dir D` as well as `spectare --state-dir D up`.
state_dir_option = click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), expose_value=False, is_eager=True,
    callback=_set_state_dir, help="Directory of the local stack (default: ./.spectare; also $SPECTARE_STATE_DIR).")


@click.command()
@click.option("--demo", is_flag=True, help="Also start a simulated RTSP camera with real street footage "
              "and register it as camera 'demo'.")
@click.option("--nats-port", type=_PORT, help="NATS client port (default: last run's, else a free one).")
@click.option("--s3-port", type=_PORT, help="S3 port (default: last run's, else a free one).")
@click.option("--camera-port", type=_PORT, help="Demo RTSP camera port (default: last run's, else a free one).")
@click.option("--cluster", type=click.IntRange(1, 5), default=1, show_default=True, metavar="N",
              help="Run N clustered nats-servers (JetStream over routes, R3 streams and buckets for N >= 3) and two "
                   "processes of every service but the indexer, as on several machines; try killing any of them.")
@state_dir_option
def up(demo: bool, nats_port: int | None, s3_port: int | None, camera_port: int | None, cluster: int) -> None:
    """Run Spectare on this machine until Ctrl-C.

    Starts nats-server (JetStream) and a SeaweedFS S3 server on 127.0.0.1, creates the streams,
    buckets and KV stores, and runs the services, restarting any that dies. Data lives in the
    state directory (./.spectare by default) and is kept across runs.
    """
    setup_logging(os.environ.get("SPECTARE_LOG_LEVEL", "INFO"), "up")
    state_dir = _state_dir()
    # Endpoints come from the processes started here, never from a config meant for production.
    settings = load_settings(state_dir=state_dir)
    if cluster > 1 and nats_port:
        raise click.UsageError("--nats-port names one server; a --cluster picks its nodes' ports itself")
    stack = LocalStack(StackOptions(state_dir, demo, nats_port, s3_port, camera_port, cluster), settings)
    click.echo(f"starting Spectare in {state_dir.resolve()} ...")
    info = stack.start()
    try:
        click.echo(describe(info, stack.settings, stack.login_link), nl=True)
        stack.run_forever()
        click.echo("stopping ...")
    finally:
        stack.stop()
    click.echo("stopped; data kept in " + str(state_dir.resolve()))


@click.command()
@state_dir_option
def down() -> None:
    """Stop the `spectare up` running from this directory's state dir."""
    pid = stop_running(_state_dir())
    click.echo(f"stopped the stack (pid {pid})")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Check that NATS (with JetStream) and S3 answer; exit 1 if one does not."""
    checks = asyncio.run(check_all(load_settings()))
    if as_json:
        print_json([c.__dict__ for c in checks])
    else:
        for c in checks:
            click.echo(f"{'ok ' if c.ok else 'BAD'}  {c.name:<5} {c.endpoint}  {c.detail}")
    if not all(c.ok for c in checks):
        raise SystemExit(1)


@click.command()
@click.option("--mount", "mounts", multiple=True, required=True, metavar="NAME=FILE",
              help="Serve FILE (MP4/MKV, H.264 without B-frames) at rtsp://127.0.0.1:PORT/NAME. Repeatable.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="RTSP port (0: any free).")
def testcam(mounts: tuple[str, ...], port: int) -> None:
    """Serve video files as real RTSP cameras (looping, in real time) until Ctrl-C."""
    parsed: dict[str, Path] = {}
    for mount in mounts:
        name, sep, file = mount.partition("=")
        if not sep or not name or not file:
            raise click.BadParameter(f"{mount!r} is not NAME=FILE", param_hint="--mount")
        parsed[name] = Path(file)
    log_file = _state_dir() / "logs" / "testcam.log"
    with RtspTestCamera(parsed, log_file, port=port or None) as camera:
        for name in parsed:
            click.echo(f"serving {camera.url(name)}")
        click.echo(f"log: {log_file}; stop with Ctrl-C")
        try:
            while camera.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
