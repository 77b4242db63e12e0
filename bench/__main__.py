"""`make bench`: every performance figure as a ratio against a reference measured in the same run.

Each bench/bench_*.py module exposes `run() -> list[Figure]`; this collects and prints them
and writes bench/RESULTS.md with the machine and date. `python -m bench incidents webhook` runs
only those modules (and leaves RESULTS.md as it is). Exits 1 unless every figure passed.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.figures import Figure
from local_stack.template import load_template

HERE = Path(__file__).resolve().parent
LEGEND = (
    "A timing figure is the median of its runs, with their range; its ratio's range is over the runs (run by run "
    "where both sides were measured alternately). ok: `yes` when the whole range is within the target, `unstable` "
    "when the median is but the range crosses the target, `NO` when the median is not."
)

# Powertools child loggers take the service name when their module is imported, which a bench module does
# before it sets any function's environment: without it they are orphans that cannot carry the correlation
# id (OrphanedChildLoggerError in the consumer). The same default as tests/conftest.py.
os.environ.setdefault(
    "POWERTOOLS_SERVICE_NAME",
    load_template()["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"],
)


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
            f"# Benchmark results\n\nMeasured {stamp} on {machine} by `make bench`.\n\n{LEGEND}\n\n{table}\n",
            encoding="utf-8",
        )
    failing = [f"{figure.status}: {figure.name}" for figure in figures if not figure.ok]
    for line in failing:
        print(line, file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
