"""Benchmarks: `make bench` (python -m bench) prints tables and writes JSON under bench/results/."""
