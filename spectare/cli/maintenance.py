"""`spectare retention run` and `spectare export run`: the indexer's scheduled jobs, now."""

import click

from .common import print_json, print_table, with_index

JOB_TIMEOUT_S = 3600.0


@click.group()
def retention() -> None:
    """Delete footage and detections older than each camera's retention."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def retention_run(dry_run: bool, as_json: bool) -> None:
    """Run a retention sweep now (the indexer also runs one every hour).

    \b
    Per camera (`spectare camera set NAME --keep-days 7 --keep-event-days 30 --max-gb 200`, else the
    indexer's defaults): plain footage older than keep-days goes; footage around detections, the
    detections and their snapshots stay until keep-event-days; beyond max-gb the oldest plain
    footage goes first. Objects, index rows and stream events are deleted in step.
    """
    done = with_index(lambda index: index.retention(dry_run=dry_run), timeout_s=JOB_TIMEOUT_S)
    if as_json:
        print_json(done.model_dump(mode="json"))
        return
    verb = "would delete" if done.dry_run else "deleted"
    click.echo(f"{verb} {done.chunks} chunks ({done.bytes / 1e9:.2f} GB), {done.detections} detections and "
               f"{done.snapshots} snapshots in {done.seconds:.1f} s"
               + (f"; finished {done.resumed} deletions of an interrupted sweep first" if done.resumed else ""))
    if done.cameras:
        print_table(["CAMERA", "CHUNKS", "GB", "DETECTIONS"],
                    [[c.camera, str(c.chunks), f"{c.bytes / 1e9:.2f}", str(c.detections)] for c in done.cameras])


@click.group()
def export() -> None:
    """Export the index to Parquet in S3, for DuckDB and other tools."""


@export.command("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def export_run(as_json: bool) -> None:
    """Export what changed since the last export now (the indexer also does it every hour), to
    <bucket>/parquet/<table>/date=YYYY-MM-DD/camera=NAME/*.parquet."""
    done = with_index(lambda index: index.export(), timeout_s=JOB_TIMEOUT_S)
    if as_json:
        print_json(done.model_dump(mode="json"))
        return
    click.echo(f"exported {done.partitions} partitions ({done.rows} rows, {done.files} files, "
               f"{done.bytes / 1e6:.1f} MB) under {done.prefix}/ in {done.seconds:.1f} s")



