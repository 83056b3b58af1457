"""Indexing benchmark: the indexer's writer and its search, on this machine.

1. Insert: synthetic detections (100 cameras) through `IndexWriter.commit_tables` (the Arrow path the indexer
   uses: de-duplicating anti-join, chunk links, progress, one transaction per batch) at the indexer's default
   batch size and a larger one; the whole per-message path (encoded Detection -> checks -> Batch -> commit);
   and end to end: detections published on a real nats-server, indexed by the indexer process.
2. Search: N detections over 30 days and 100 cameras, in bursts (one incident = 10 detections 1 s apart),
   with every camera's 10 s chunks for the 30 days (25.9 M rows); the data is generated inside DuckDB (its load
   speed is not what is measured). Then `Reader.search` (incident SQL, covering chunks, presigned URLs) for a
   mix of questions, timed one by one: p50 / p95 per question and overall.
"""

import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from spectare.core.bus import connect, ensure_topology
from spectare.core.config import load_settings, settings_env
from spectare.core.indexclient import IndexClient, wait_for_indexer
from spectare.indexer.queries import Presigner, Reader
from spectare.indexer.rows import CHUNK_SCHEMA, DETECTION_SCHEMA, GAP_SCHEMA, Batch, detection_row
from spectare.indexer.settings import IndexerSettings
from spectare.indexer.tables import open_database
from spectare.indexer.writer import IndexWriter
from spectare.local.process import ManagedProcess
from spectare.local.servers import NatsServer
from spectare.schemas import Detection, Names
from spectare.schemas.queries import SearchRequest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CAMERAS = 100
DAYS = 30
CHUNK_S = 10
LABELS = ("person", "car", "truck", "bicycle", "bus", "motorcycle")
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def add_arguments(parser) -> None:
    group = parser.add_argument_group("indexing")
    group.add_argument("--index-rows", default="1000000,10000000",
                       help="comma-separated detection counts to search over (default 1000000,10000000)")
    group.add_argument("--insert-rows", type=int, default=1_000_000, help="detections inserted (default 1000000)")
    group.add_argument("--searches", type=int, default=50, help="searches of each kind (default 50)")
    group.add_argument("--nats-rows", type=int, default=100_000,
                       help="detections sent through NATS to the indexer process (default 100000; 0: skip)")


def run(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-index-"))
    try:
        result = {"benchmark": "indexing", "cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2),
                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "insert": _insert(work, args.insert_rows), "search": []}
        if args.nats_rows:
            result["insert"]["rows"].append(asyncio.run(_through_nats(work, args.nats_rows)))
        _print_insert(result["insert"])
        for rows in [int(r) for r in str(args.index_rows).split(",") if r.strip() and int(r) > 0]:
            print(f"indexing benchmark: search over {rows:,} detections ...", flush=True)
            result["search"].append(_search(work, rows, args.searches))
            _print_search(result["search"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = round(os.getloadavg()[0], 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "indexing.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "indexing.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'indexing.json'} and indexing.md")


# -- insert -----------------------------------------------------------------------------------------------

def _detections_table(first: int, count: int, rng: np.random.Generator) -> pa.Table:
    i = np.arange(first, first + count)
    cams = np.array([f"cam{c:03d}" for c in range(CAMERAS)], dtype=object)
    return pa.table({
        "camera": pa.array(cams[(i // 10) % CAMERAS], pa.string()),
        "time": pa.array(T0 + (i // 1000) * 60.0 + (i % 10), pa.float64()),
        "label": pa.array(np.array(LABELS, dtype=object)[(i // 10) % len(LABELS)], pa.string()),
        "class_id": pa.array(np.zeros(count, np.int32)),
        "score": pa.array(rng.uniform(0.5, 1.0, count)),
        "x1": pa.array(rng.uniform(0, 0.5, count)), "y1": pa.array(rng.uniform(0, 0.5, count)),
        "x2": pa.array(rng.uniform(0.5, 1, count)), "y2": pa.array(rng.uniform(0.5, 1, count)),
        "model": pa.array(["yolov4-tiny"] * count, pa.string()),
        "session": pa.array(["s1"] * count, pa.string()),
        "seq": pa.array(i * 15, pa.int64()),
        "idx": pa.array(np.zeros(count, np.int32)),
        "snapshot_key": pa.array([f"snapshots/x/{n}.jpg" for n in i], pa.string()),
        "stream_seq": pa.array(i + 1, pa.int64()),
    }, schema=DETECTION_SCHEMA)


def _insert(work: Path, total: int) -> dict:
    rng = np.random.default_rng(1)
    empty_chunks, empty_gaps = CHUNK_SCHEMA.empty_table(), GAP_SCHEMA.empty_table()
    rows = []
    for batch_size in (5_000, 50_000):
        con = open_database(work / f"insert-{batch_size}.duckdb")
        writer = IndexWriter(con)
        tables = [_detections_table(n, min(batch_size, total - n), rng) for n in range(0, total, batch_size)]
        began = time.perf_counter()
        for table in tables:
            writer.commit_tables(empty_chunks, empty_gaps, table)
        seconds = time.perf_counter() - began
        count = con.execute("SELECT count(*) FROM detections").fetchone()[0]
        assert count == total, (count, total)
        con.close()
        rows.append({"path": "Arrow tables -> writer", "batch": batch_size, "rows": total,
                     "seconds": round(seconds, 2), "rows_per_s": round(total / seconds)})

    # The per-message path: encoded messages -> checks -> Batch -> Arrow -> writer.
    names = Names("bench")
    count = min(total, 200_000)
    messages = []
    for n in range(count):
        camera = f"cam{(n // 10) % CAMERAS:03d}"
        label = LABELS[(n // 10) % len(LABELS)]
        detection = Detection(camera=camera, time=T0 + n, label=label, class_id=0, score=0.9,
                              box=(0.1, 0.2, 0.3, 0.4), model="yolov4-tiny", session="s1", seq=n * 15,
                              snapshot_key=f"snapshots/{camera}/{n}.jpg")
        messages.append((names.detections(camera, label), detection.encode(), f"{camera}:s1:{n * 15}:0"))
    con = open_database(work / "messages.duckdb")
    writer = IndexWriter(con)
    began = time.perf_counter()
    for start in range(0, count, 5_000):
        batch = Batch()
        for offset, (subject, data, msg_id) in enumerate(messages[start:start + 5_000]):
            found = detection_row(subject, data, msg_id, names)
            batch.add_detection(found[0], found[1], start + offset + 1)
            batch.taken("DETECTIONS", start + offset + 1)
        writer.commit(batch)
    seconds = time.perf_counter() - began
    con.close()
    rows.append({"path": "messages -> checks -> Batch -> writer", "batch": 5_000, "rows": count,
                 "seconds": round(seconds, 2), "rows_per_s": round(count / seconds)})
    return {"rows": rows}


async def _through_nats(work: Path, count: int) -> dict:
    """Detections published on a real nats-server (core publish, Msg-Ids as the detector sets them) while the
    indexer process runs: from the first publish to every one committed and answered for."""
    nats = NatsServer(work / "nats", work / "nats.log")
    nats.start()
    indexer = None
    try:
        settings = load_settings(prefix="bench", state_dir=work / "state", nats={"url": nats.url},
                                 s3={"endpoint": "127.0.0.1:9", "access_key": "bench", "secret_key": "bench-secret"})
        nc = await connect(settings, "bench")
        await ensure_topology(nc.jetstream(), settings)
        env = {**settings_env(settings), "SPECTARE_LOG_LEVEL": "WARNING",
               "SPECTARE_INDEXER__DATABASE": str(work / "nats-index.duckdb")}
        indexer = ManagedProcess("indexer", [sys.executable, "-m", "spectare.indexer"], work / "indexer.log", env=env)
        indexer.start()
        client = IndexClient(nc, settings)
        await wait_for_indexer(nc, settings, 60)
        names = settings.names
        began = time.perf_counter()
        for n in range(count):
            camera, label = f"cam{(n // 10) % CAMERAS:03d}", LABELS[(n // 10) % len(LABELS)]
            detection = Detection(camera=camera, time=T0 + n, label=label, class_id=0, score=0.9,
                                  box=(0.1, 0.2, 0.3, 0.4), model="yolov4-tiny", session="s1", seq=n * 15,
                                  snapshot_key=f"snapshots/{camera}/{n}.jpg")
            await nc.publish(names.detections(camera, label), detection.encode(),
                             headers={"Nats-Msg-Id": f"{camera}:s1:{n * 15}:0"})
            if n % 1000 == 999:
                await nc.flush()
        published = time.perf_counter() - began
        while (await client.status()).tables["detections"] < count:
            if time.perf_counter() - began > 600:
                raise RuntimeError(f"the indexer did not index {count} detections in 600 s")
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - began
        await nc.close()
    finally:
        if indexer is not None:
            indexer.stop()
        nats.stop()
    return {"path": "NATS -> indexer process (end to end)", "batch": IndexerSettings().batch_size, "rows": count,
            "seconds": round(seconds, 2), "rows_per_s": round(count / seconds), "publish_s": round(published, 2)}


# -- search -----------------------------------------------------------------------------------------------

def _build(path: Path, detections: int) -> tuple:
    """Detections and chunks generated inside DuckDB (time-ordered, as the indexer writes them)."""
    con = open_database(path)
    span = DAYS * 86_400
    chunks_per_camera = span // CHUNK_S
    began = time.perf_counter()
    con.execute(f"""
        INSERT INTO chunks
        SELECT printf('cam%03d', c), $t0 + k * {CHUNK_S}, $t0 + (k + 1) * {CHUNK_S},
               printf('footage/cam%03d/%d.mp4', c, k), 'spectare', 's1', k * 150, k * 150 + 149, 150, 1500000,
               'h264', 1920, 1080, k * {CAMERAS} + c + 1
        FROM range({chunks_per_camera}) r(k), range({CAMERAS}) q(c) ORDER BY k, c
    """, {"t0": T0})
    con.execute("INSERT INTO meta VALUES ('longest_chunk_s', ?)", [str(float(CHUNK_S))])  # as the writer keeps it
    blocks = detections // 1000
    step = span / blocks
    labels = "['" + "','".join(LABELS) + "']"
    pick = "(1 + CASE WHEN hash(i // 10) % 2 = 0 THEN 0 ELSE hash(i // 10 + 7) % 6 END)::BIGINT"  # half are people
    con.execute(f"""
        INSERT INTO detections
        SELECT camera, time, label, 0, score, 0.1, 0.1, 0.4, 0.6, 'yolov4-tiny', 's1', i * 15, 0,
               printf('snapshots/%s/%d.jpg', camera, i), printf('footage/%s/%d.mp4', camera,
               floor((time - $t0) / {CHUNK_S})::BIGINT), i + 1
        FROM (
            SELECT i, printf('cam%03d', (i // 10) % {CAMERAS}) AS camera,
                   $t0 + (i // 1000) * {step} + ((i // 10) % {CAMERAS}) * 0.37 + (i % 10) AS time,
                   {labels}[{pick}] AS label,
                   0.5 + (hash(i) % 500)::DOUBLE / 1000.0 AS score
            FROM range({blocks * 1000}) t(i)
        ) ORDER BY time
    """, {"t0": T0})
    con.execute("CHECKPOINT")
    return con, time.perf_counter() - began


def _search(work: Path, detections: int, searches: int) -> dict:
    path = work / f"search-{detections}.duckdb"
    con, build_s = _build(path, detections)
    settings = load_settings(s3={"endpoint": "127.0.0.1:9000", "access_key": "bench", "secret_key": "bench-secret"})
    ix = IndexerSettings()
    reader = Reader(settings, ix, Presigner(settings, ix))
    rng = random.Random(7)
    end = T0 + DAYS * 86_400

    def camera() -> str:
        return f"cam{rng.randrange(CAMERAS):03d}"

    def moment(window: float) -> float:
        return rng.uniform(T0, end - window)

    kinds = {
        "one camera, person, last 24 h": lambda: SearchRequest(camera=camera(), label="person", start=end - 86_400,
                                                               end=end),
        "one camera, any label, a 1 h window": lambda: (lambda t: SearchRequest(camera=camera(), start=t,
                                                                                end=t + 3600))(moment(3600)),
        "all cameras, person, a 1 h window": lambda: (lambda t: SearchRequest(label="person", start=t,
                                                                              end=t + 3600))(moment(3600)),
        "one camera, person, 30 days": lambda: SearchRequest(camera=camera(), label="person", start=T0, end=end),
    }
    rows, every = [], []
    cur = con.cursor()
    for name, make in kinds.items():
        reader.search(cur, make())  # warm
        times, found, chunks = [], 0, 0
        for _ in range(searches):
            request = make()
            began = time.perf_counter()
            answer = reader.search(cur, request)
            times.append(time.perf_counter() - began)
            found += len(answer.incidents)
            chunks += sum(len(i.chunks) for i in answer.incidents)
        every += times
        rows.append({"query": name, "p50_ms": _ms(_pct(times, 50)), "p95_ms": _ms(_pct(times, 95)),
                     "incidents_per_search": round(found / searches, 1),
                     "chunks_per_search": round(chunks / searches, 1)})
    counts = con.execute("SELECT (SELECT count(*) FROM detections), (SELECT count(*) FROM chunks)").fetchone()
    con.close()
    size = path.stat().st_size
    path.unlink()
    return {"detections": counts[0], "chunks": counts[1], "build_s": round(build_s, 1),
            "database_mb": round(size / 1e6), "searches": len(every), "p50_ms": _ms(_pct(every, 50)),
            "p95_ms": _ms(_pct(every, 95)), "queries": rows}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 1)


# -- output -----------------------------------------------------------------------------------------------

def _print_insert(insert: dict) -> None:
    print("insert (DuckDB writer, one transaction per batch)")
    print(f"{'path':<40} {'batch':>7} {'rows':>10} {'seconds':>8} {'rows/s':>10}")
    for r in insert["rows"]:
        print(f"{r['path']:<40} {r['batch']:>7} {r['rows']:>10} {r['seconds']:>8} {r['rows_per_s']:>10,}")


def _print_search(search: list[dict]) -> None:
    print("search (incidents + covering chunks + presigned URLs), ms")
    for s in search:
        print(f"  {s['detections']:,} detections, {s['chunks']:,} chunks ({s['database_mb']} MB, built in "
              f"{s['build_s']} s): all p50 {s['p50_ms']} p95 {s['p95_ms']}")
        for q in s["queries"]:
            print(f"    {q['query']:<40} p50 {q['p50_ms']:>7} p95 {q['p95_ms']:>7}  "
                  f"incidents {q['incidents_per_search']:>6}  chunks {q['chunks_per_search']:>7}")


def markdown(result: dict) -> str:
    lines = [f"# Indexing benchmark ({result['when']}, {result['cpus']} CPUs)", "",
             f"1-minute load average {result['load_before']} before the run and {result['load_after']} after it: "
             "anything else running on the machine (other test suites) slows every number here.", "",
             "Insert: synthetic detections of 100 cameras through the indexer's writer (anti-join de-duplication, "
             "chunk links, progress; one transaction per batch), no NATS. The message path adds decoding and checks "
             "per message.", "",
             "| path | batch | rows | seconds | rows/s |", "|---|---|---|---|---|"]
    for r in result["insert"]["rows"]:
        lines.append(f"| {r['path']} | {r['batch']} | {r['rows']:,} | {r['seconds']} | {r['rows_per_s']:,} |")
    lines += ["", "Search: `Reader.search` (incident SQL, covering chunks, presigned URLs) over detections of 100 "
              "cameras across 30 days, in bursts of 10 detections 1 s apart, with every camera's 10 s chunks.", "",
              "| detections | chunks | DB size | query | p50 ms | p95 ms | incidents/search | chunks/search |",
              "|---|---|---|---|---|---|---|---|"]
    for s in result["search"]:
        for q in s["queries"]:
            lines.append(f"| {s['detections']:,} | {s['chunks']:,} | {s['database_mb']} MB | {q['query']} | "
                         f"{q['p50_ms']} | {q['p95_ms']} | {q['incidents_per_search']} | {q['chunks_per_search']} |")
        lines.append(f"| {s['detections']:,} | | | **all {s['searches']} searches** | **{s['p50_ms']}** | "
                     f"**{s['p95_ms']}** | | |")
    return "\n".join(lines) + "\n"
