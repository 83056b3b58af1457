"""The `spectare` command line."""

import logging
import os
import sys
from pathlib import Path

import click

from spectare import __version__
from spectare.core.config import CONFIG_ENV
from spectare.core.errors import SpectareError
from spectare.core.logs import setup_logging
from spectare.core.redact import redact

from .camera import camera
from .clip import clip
from .detections import detections
from .events import events
from .footage import footage
from .maintenance import export, retention
from .search import search, sql
from .stack import down, status, testcam, up
from .token import token


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="spectare")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help=f"TOML settings file (default: ./spectare.toml if present; also ${CONFIG_ENV}).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="SPECTARE_STATE_DIR",
              help="Directory of the local stack (default: ./.spectare; also $SPECTARE_STATE_DIR).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def cli(config_file: Path | None, state_dir: Path | None, verbose: bool) -> None:
    """Spectare records RTSP cameras into S3 over NATS JetStream, detects people and vehicles,
    and finds footage again.

    \b
    Start everything on this machine:   spectare up --demo
    Add a camera:                       spectare camera add porch rtsp://user:pass@192.0.2.7/stream1
    List cameras:                       spectare camera list
    Watch people and vehicles:          spectare detections tail --label person
    One line per object, in and out:    spectare events tail --label person
    Find people seen yesterday:         spectare search --label person --start "yesterday 00:00" --end today
    What was recorded at a moment:      spectare footage at porch "today 08:30"
    A token for the HTTP API:           spectare token create --scope read

    Commands find a `spectare up` running in the same directory by themselves. To use an external
    NATS and S3 instead, set them in spectare.toml or the environment (SPECTARE_NATS__URL,
    SPECTARE_S3__ENDPOINT, SPECTARE_S3__ACCESS_KEY, SPECTARE_S3__SECRET_KEY, ...).
    """
    # Settings are read lazily by each command; the environment carries these choices to them.
    if config_file:
        os.environ[CONFIG_ENV] = str(config_file)
    if state_dir:
        os.environ["SPECTARE_STATE_DIR"] = str(state_dir)
    setup_logging("DEBUG" if verbose else os.environ.get("SPECTARE_LOG_LEVEL", "WARNING"), "cli")


cli.add_command(up)
cli.add_command(down)
cli.add_command(status)
cli.add_command(testcam)
cli.add_command(camera)
cli.add_command(footage)
cli.add_command(detections)
cli.add_command(events)
cli.add_command(clip)
cli.add_command(retention)
cli.add_command(export)
cli.add_command(search)
cli.add_command(sql)
cli.add_command(token)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SpectareError as exc:
        click.echo(f"spectare: error: {redact(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        logging.shutdown()
