"""Benchmark: backfill the full year 2013 on the embedded default and print the figures.

Runs ``headwater run`` as a subprocess (real Luigi, forked workers, in-process
functions, the local Open-Meteo-compatible server) into a fresh temporary lake,
then reads the run's records for per-stage throughput, and times the vectorised
cleaning on the whole year in one call.

    python bench/backfill.py [--grain month|day] [--workers 2] [--start ... --end ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _stage_records(state: Path) -> dict[str, dict[str, float]]:
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"rows": 0, "seconds": 0.0, "n": 0})
    for path in state.glob("*/done/*.json"):
        body = json.loads(path.read_text())
        name = path.name
        stage = (
            "clean"
            if name.startswith("CleanPartition")
            else ("extract weather" if "_weather_" in name else "extract flights")
        )
        totals[stage]["rows"] += body["rows"]
        totals[stage]["seconds"] += body["seconds"]
        totals[stage]["n"] += 1
    return totals


def _clean_throughput(lake_uri: str, grain: str) -> tuple[int, float]:
    """Time the flights cleaning (contracts included) on the whole year in one call."""
    import pandas as pd

    from headwater.core.partitions import Partition
    from headwater.data.lake import open_lake
    from headwater.usecases.flights.cleaning import clean_partition

    lake = open_lake(lake_uri)
    raw = {}
    for source in ("flights", "weather"):
        frames = [
            lake.read("raw", f"flights/{source}", key)[0].to_pandas(date_as_object=False)
            for key in lake.partitions("raw", f"flights/{source}")
        ]
        raw[source] = pd.concat(frames, ignore_index=True)
    year = Partition(pd.Timestamp("2013-01-01").date(), pd.Timestamp("2014-01-01").date(), "month")
    clean_partition(raw, year, "America/New_York")  # warm-up
    started = time.perf_counter()
    result = clean_partition(raw, year, "America/New_York")
    seconds = time.perf_counter() - started
    return len(result.clean), seconds


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grain", choices=["month", "day"], default="month")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--end", default="2013-12-31")
    args = parser.parse_args(argv)

    db = ROOT / "var" / "demo" / "flights.sqlite"
    headwater = str(Path(sys.executable).with_name("headwater"))
    if not db.exists():
        subprocess.run([headwater, "demo-data", "--usecase", "flights"], check=True, cwd=ROOT)
    with tempfile.TemporaryDirectory(prefix="headwater-bench-") as tmp:
        env = {
            **os.environ,
            "HEADWATER_STAGE": "local",
            "HEADWATER_LAKE__URI": f"file://{tmp}/lake",
            "HEADWATER_PARTITIONING__GRAIN": args.grain,
            "HEADWATER_USECASE__FLIGHTS__SOURCES__FLIGHTS__URL": f"sqlite:///{db}",
            "HEADWATER_NOTIFY__OUTBOX": f"{tmp}/outbox",
            "HEADWATER_RUN__STATE_DIR": f"{tmp}/runs",
            "HEADWATER_RUN__LOG_DIR": f"{tmp}/logs",
        }
        command = [
            headwater,
            "run",
            "--usecase",
            "flights",
            "--start",
            args.start,
            "--end",
            args.end,
            "--until",
            "clean",
            "--workers",
            str(args.workers),
        ]
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-4000:], file=sys.stderr)
            print(f"backfill FAILED (exit {proc.returncode})", file=sys.stderr)
            return 1
        stages = _stage_records(Path(tmp) / "runs")
        clean_rows, clean_seconds = _clean_throughput(f"file://{tmp}/lake", args.grain)

    flights = stages["extract flights"]["rows"]
    print(f"backfill {args.start}..{args.end}, grain={args.grain}, workers={args.workers}")
    print(f"  end to end (process start to exit): {wall:8.2f} s   target <= 30 s")
    print(f"  flights per second end to end:      {flights / wall:10,.0f}")
    print(f"  peak RSS of one process:            {peak_mb:8.0f} MiB")
    for stage in ("extract flights", "extract weather", "clean"):
        s = stages[stage]
        rate = s["rows"] / s["seconds"] if s["seconds"] else float("nan")
        print(
            f"  {stage:<16} {int(s['n']):4d} invocations {int(s['rows']):9,d} rows "
            f"{s['seconds']:7.2f} s in functions  {rate:12,.0f} rows/s"
        )
    print(
        f"  cleaning, whole year in one call:   {clean_rows:,} rows in {clean_seconds:.3f} s"
        f" = {clean_rows / clean_seconds:,.0f} rows/s   target >= 1,000,000"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
