"""Benchmarks: each module `journeyman.bench.<name>` exposes `run(size, json_path, console)`,
prints a table with the raw baseline measured in the same run, and writes one JSON object."""
