"""`make bench`: every performance figure as a ratio against a reference measured in the same run.

Each bench/bench_*.py module exposes `run() -> list[Figure]`; this collects and prints them
and writes bench/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.figures import Figure

HERE = Path(__file__).resolve().parent


def _cpu_model() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or "unknown CPU"
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return models[0] if models else platform.processor() or "unknown CPU"


def main() -> int:
    figures: list[Figure] = []
    only = set(sys.argv[1:])
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem.removeprefix("bench_") not in only:
            continue
        print(f"running {path.stem} …", file=sys.stderr, flush=True)
        module = importlib.import_module(f"bench.{path.stem}")
        figures.extend(module.run())
    table = Figure.table(figures)
    print(table)
    machine = (
        f"{_cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.system()} {platform.release()}"
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not only:
        (HERE / "RESULTS.md").write_text(
            f"# Benchmark results\n\nMeasured {stamp} on {machine} by `make bench`.\n\n{table}\n", encoding="utf-8"
        )
    return 0 if all(figure.ok for figure in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
