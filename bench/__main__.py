"""python -m bench [NAME ...] [options]: run benchmarks (default: all)."""

import argparse
import sys

from . import avsync, cluster, detection, indexing, live, playback, recording, remux, sizing, tracking, webui

BENCHMARKS = {"recording": recording, "detection": detection, "indexing": indexing, "remux": remux,
              "playback": playback, "live": live, "webui": webui, "tracking": tracking, "sizing": sizing,
              "avsync": avsync, "cluster": cluster}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    for module in BENCHMARKS.values():
        module.add_arguments(parser)
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    for name in args.names or list(BENCHMARKS):
        BENCHMARKS[name].run(args)


if __name__ == "__main__":
    sys.exit(main())
