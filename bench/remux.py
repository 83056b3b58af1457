"""Remux benchmark: the segmenter's CPU per chunk, plain MP4 (how chunks were stored before) against fragmented MP4
(how they are stored now), and what `spectare.media.fmp4.to_fragmented` costs per old chunk (the API serving one
for HLS).

The recording benchmark's 1080p15 clip (~4 Mbit/s, 1 s GOP) is demuxed as ingest publishes it (Annex-B) and cut
into 10 s chunk plans by the segmenter's chunker; one `Remuxer` per format remuxes the plans round after round (the
template kept between chunks, as for a camera in one session). CPU is the process's (`time.process_time`, every
thread). Rounds alternate between the formats so that other load on the machine falls on both alike; the median
round of each is reported, and the ratio fragmented / plain.
"""

import json
import os
import statistics
import time
from pathlib import Path

from spectare.local.stack import DEMO_SOURCE
from spectare.local.testcam import make_test_clip
from spectare.media.fmp4 import FRAGMENTED_MP4_OPTIONS, is_fragmented, to_fragmented
from spectare.segmenter.remux import Remuxer
from tests.packets import PLAIN_MP4_OPTIONS, load_clip, plans_of

from .recording import CLIP, FPS, SEGMENT_SECONDS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def add_arguments(parser) -> None:
    group = parser.add_argument_group("remux")
    group.add_argument("--remux-chunks", type=int, default=200, help="chunks remuxed per round (default 200)")
    group.add_argument("--remux-rounds", type=int, default=3, help="rounds of each format (default 3)")


def run(args) -> None:
    load_before = round(os.getloadavg()[0], 2)
    clip = make_test_clip(DEMO_SOURCE, CLIP, width=1920, height=1080, fps=FPS, gop_seconds=1, seconds=30,
                          bitrate_kbps=4000)
    plans = plans_of(load_clip(clip), segment_seconds=SEGMENT_SECONDS)[:-1]  # the last one is cut short by the stall
    remuxers = {"plain": Remuxer(PLAIN_MP4_OPTIONS), "fragmented": Remuxer(FRAGMENTED_MP4_OPTIONS)}
    chunks = {name: [r.remux(p).data for p in plans] for name, r in remuxers.items()}  # warm: templates opened
    assert not any(map(is_fragmented, chunks["plain"])) and all(map(is_fragmented, chunks["fragmented"]))
    rounds: dict[str, list[float]] = {"plain": [], "fragmented": [], "to_fragmented": []}
    for _ in range(args.remux_rounds):
        for name, remuxer in remuxers.items():
            rounds[name].append(_cpu_ms_per_chunk(lambda i, r=remuxer: r.remux(plans[i % len(plans)]),
                                                  args.remux_chunks))
        old = chunks["plain"]
        rounds["to_fragmented"].append(_cpu_ms_per_chunk(lambda i, old=old: to_fragmented(old[i % len(old)]),
                                                         args.remux_chunks))
    median = {name: round(statistics.median(values), 3) for name, values in rounds.items()}
    result = {
        "benchmark": "remux", "clip": "1920x1080 15 fps H.264 ~4 Mbit/s, 1 s GOP, no audio",
        "segment_seconds": SEGMENT_SECONDS, "chunks_per_round": args.remux_chunks, "rounds": args.remux_rounds,
        "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
        "cpu_ms_per_chunk_rounds": {name: [round(v, 3) for v in values] for name, values in rounds.items()},
        "cpu_ms_per_chunk": median,
        "ratio_fragmented_to_plain": round(median["fragmented"] / median["plain"], 3),
        "bytes_per_chunk": {name: round(statistics.mean(map(len, data))) for name, data in chunks.items()},
    }
    print(markdown(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "remux.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "remux.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'remux.json'} and remux.md")


def _cpu_ms_per_chunk(remux_one, count: int) -> float:
    began = time.process_time()
    for i in range(count):
        remux_one(i)
    return (time.process_time() - began) / count * 1e3


def markdown(result: dict) -> str:
    ms, size = result["cpu_ms_per_chunk"], result["bytes_per_chunk"]
    lines = [
        f"# Remux benchmark ({result['when']}, {result['cpus']} CPUs)",
        "",
        f"{result['clip']}; {result['segment_seconds']} s chunks; CPU ms per chunk (process time), median of "
        f"{result['rounds']} rounds of {result['chunks_per_round']} chunks, the formats alternating.",
        "",
        f"1-minute load average {result['load_before']} before and {result['load_after']} after the run (other work "
        "on the machine slows both formats alike: the rounds alternate).",
        "",
        "| what | CPU ms per chunk | rounds | bytes per chunk |",
        "|---|---|---|---|",
        f"| segmenter remux, plain MP4 (before) | {ms['plain']} | "
        f"{', '.join(map(str, result['cpu_ms_per_chunk_rounds']['plain']))} | {size['plain']:,} |",
        f"| segmenter remux, fragmented MP4 (now) | {ms['fragmented']} | "
        f"{', '.join(map(str, result['cpu_ms_per_chunk_rounds']['fragmented']))} | {size['fragmented']:,} |",
        f"| `to_fragmented` of an old plain chunk | {ms['to_fragmented']} | "
        f"{', '.join(map(str, result['cpu_ms_per_chunk_rounds']['to_fragmented']))} | |",
        "",
        f"Fragmented / plain: **{result['ratio_fragmented_to_plain']}**.",
    ]
    return "\n".join(lines) + "\n"
