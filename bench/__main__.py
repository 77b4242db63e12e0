"""`make bench`: every performance figure as a ratio against a reference measured in the same run.

Each bench/bench_*.py module exposes `run(full: bool) -> list[Figure]`; this collects and prints them
and writes bench/RESULTS.md with the machine and date. `python -m bench incidents webhook` runs
only those modules (and leaves RESULTS.md as it is). Exits 1 unless every figure passed.

By default (a few minutes) the figures are the exact counts (AWS calls, items read, request units,
Nylas calls, cost) and the timings of this code's own CPU. BENCH=full adds the end-to-end runs whose
timings are wall clock on the local stack (batches against a slow Nylas, webhooks over HTTP, bursts):
they measure moto and the machine as much as this code, and take a quarter of an hour.
A section of RESULTS.md from `LOAD_HEADING` on (the load test's figures, from `make load`) is kept.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.figures import Figure
from local_stack.template import load_template

HERE = Path(__file__).resolve().parent
LOAD_HEADING = "## The load test"
LEGEND = (
    "A timing figure is the median of its runs, with their range; its ratio's range is over the runs (run by run "
    "where both sides were measured alternately). ok: `yes` when the whole range is within the target, `unstable` "
    "when the median is but the range crosses the target, `NO` when the median is not."
)
SHARED_MACHINE = (
    "Counts do not depend on the machine. Timings are CPU time where they can be (the function's own, the emulator's "
    "left out), and a machine shared with other work still slows CPU time a little: compare ratios, not absolutes."
)
WALL_CLOCK = (
    "BENCH=full adds the diagnosis batch figures and the end-to-end ones (bench_e2e): those are wall clock on the "
    "local stack, moto's throughput and the machine's load as much as this code's, so a busy machine inflates them "
    "and widens their spread."
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


def _load_section(results: Path) -> str:
    """The load test's figures as RESULTS.md holds them (written from `make load`'s output), or ""."""
    text = results.read_text(encoding="utf-8") if results.exists() else ""
    return text[text.index(LOAD_HEADING) :].strip() if LOAD_HEADING in text else ""


def main() -> int:
    mode = os.environ.get("BENCH", "quick")
    if mode not in ("quick", "full"):
        print(f"BENCH={mode}: say BENCH=full for the end-to-end runs, or leave it unset", file=sys.stderr)
        return 2
    full = mode == "full"
    figures: list[Figure] = []
    only = set(sys.argv[1:])
    started = time.perf_counter()
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem.removeprefix("bench_") not in only:
            continue
        print(f"running {path.stem} …", file=sys.stderr, flush=True)
        module = importlib.import_module(f"bench.{path.stem}")
        figures.extend(module.run(full=full))
    took = time.perf_counter() - started
    table = Figure.table(figures)
    print(table)
    machine = (
        f"{_cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.system()} {platform.release()}"
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not only:
        results = HERE / "RESULTS.md"
        command = "BENCH=full make bench" if full else "make bench"
        sections = [
            "# Benchmark results",
            f"Measured {stamp} on {machine} by `{command}` in {took / 60:.1f} minutes.",
            f"{LEGEND} {SHARED_MACHINE}" + (f" {WALL_CLOCK}" if full else ""),
            table,
            _load_section(results),
        ]
        results.write_text("\n\n".join(section for section in sections if section) + "\n", encoding="utf-8")
    failing = [f"{figure.status}: {figure.name}" for figure in figures if not figure.ok]
    for line in failing:
        print(line, file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
