"""Benchmark: training time and memory, on the full year and on a scaling series.

For each scale factor k, a lake of clean flights is made by resampling every real
month of 2013 k times with replacement and adding noise (weather, delays), then the
real entrypoint is submitted exactly as the local runner does (spark-submit of
emr_jobs/train.py with the flights options on local[2]). Prints wall time, rows/s, the peak
resident memory of the JVM and of the Python driver process, sampled from /proc, and the
job's seconds per step (from its summary).

    python bench/train.py [--scales 1,3,10,30] [--source-lake file://var/lake]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in task.read_text().split())
            except OSError:
                pass
    return out


def _rss_mib(pid: int) -> tuple[str, float]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return "", 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return cmd, int(line.split()[1]) / 1024
    return cmd, 0.0


class PeakMemory(threading.Thread):
    """Samples the RSS of a process tree: the JVM, the Python driver, Python workers."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peaks = {"jvm": 0.0, "python driver": 0.0, "python workers (sum)": 0.0}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            workers = 0.0
            drivers = []
            for child in _descendants(self.pid):
                cmd, rss = _rss_mib(child)
                if cmd.endswith("java"):
                    self.peaks["jvm"] = max(self.peaks["jvm"], rss)
                elif "python" in cmd:
                    drivers.append(rss)
            # the largest Python process is the driver; the rest are workers
            if drivers:
                drivers.sort()
                self.peaks["python driver"] = max(self.peaks["python driver"], drivers[-1])
                workers = sum(drivers[:-1])
            self.peaks["python workers (sum)"] = max(self.peaks["python workers (sum)"], workers)
            time.sleep(0.2)


def make_scaled_lake(source_uri: str, target_uri: str, factor: int, seed: int = 7) -> int:
    """Resample each real month ``factor`` times with noise into a new lake; return rows."""
    import numpy as np

    from headwater.core.layout import CLEAN, RAW, dataset
    from headwater.data.lake import open_lake
    from headwater.data.pipeline import latest_snapshot

    flights, planes_dataset = dataset("flights", "flights"), dataset("flights", "planes")
    source, target = open_lake(source_uri), open_lake(target_uri)
    rng = np.random.default_rng(seed)
    rows = 0
    for key in source.partitions(CLEAN, flights):
        table, _ = source.read(CLEAN, flights, key)
        frame = table.to_pandas()
        picks = rng.integers(0, len(frame), size=len(frame) * factor)
        out = frame.iloc[picks].reset_index(drop=True)
        for name, sigma in (
            ("temp_f", 2.0),
            ("humidity_pct", 3.0),
            ("wind_speed_mph", 1.5),
            ("pressure_hpa", 1.0),
            ("dew_point_f", 2.0),
        ):
            out[name] = out[name] + rng.normal(0.0, sigma, len(out))
        jitter = rng.normal(0.0, 4.0, len(out))
        flown = ~out["cancelled"]
        out.loc[flown, "dep_delay"] = out.loc[flown, "dep_delay"] + jitter[flown.to_numpy()]
        out.loc[flown, "arr_delay"] = out.loc[flown, "arr_delay"] + jitter[flown.to_numpy()]
        label = out["dep_delay"] >= 15
        out["dep_delayed_15"] = label.astype("boolean").mask(out["cancelled"])
        import pyarrow as pa

        batch = pa.Table.from_pandas(out, schema=table.schema, preserve_index=False)
        target.publish(
            CLEAN, flights, key, [batch], schema=table.schema, source="bench", run_id="bench"
        )
        rows += len(out)
    snapshot = latest_snapshot(source, "flights", "planes")
    planes, _ = source.read(RAW, planes_dataset, snapshot)
    target.publish(
        RAW,
        planes_dataset,
        snapshot,
        [planes],
        schema=planes.schema,
        source="bench",
        run_id="bench",
    )
    return rows


def submit(
    lake_uri: str, version: str, driver_memory: str
) -> tuple[float, dict[str, float], dict[str, float]]:
    """spark-submit the training job as the local runner does; wall time, peaks, step seconds."""
    from datetime import date

    from headwater.core.config import load_settings
    from headwater.model.options import TrainOptions
    from headwater.model.runners import LocalSparkRunner, job_arguments, parse_summary

    settings = load_settings("local", overrides={"training": {"driver_memory": driver_memory}})
    runner = LocalSparkRunner(settings, ROOT / "emr_jobs" / "train.py")
    options = TrainOptions(
        usecase="flights",
        lake=lake_uri,
        version=version,
        start=date(2013, 1, 1),
        end=date(2013, 12, 31),
        holdout_from=date(2013, 11, 1),
        shuffle_partitions=settings.training.shuffle_partitions,
    )
    args = job_arguments(options)
    started = time.perf_counter()
    proc = subprocess.Popen(
        runner.command(args),
        env=runner.environment(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    sampler = PeakMemory(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    sampler.done.set()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"training failed at {lake_uri} (exit {proc.returncode})")
    return wall, sampler.peaks, parse_summary(out)["steps"]


def step_table(factor: int, seconds: dict[str, float]) -> str:
    """The job's seconds per step (its progress records), one line each, for one scale."""
    lines = [f"  scale {factor}: seconds per step"]
    lines += [f"    {name:<26} {value:>7.2f}" for name, value in seconds.items()]
    lines.append(f"    {'(all steps)':<26} {sum(seconds.values()):>7.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the series and print one line per scale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,3,10,30")
    parser.add_argument(
        "--source-lake",
        default=f"file://{ROOT}/var/lake",
        help="a lake holding the cleaned full year (make demo builds it)",
    )
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    print(
        f"{'scale':>5} {'rows':>11} {'train s':>8} {'rows/s':>9} {'JVM MiB':>8} "
        f"{'py driver MiB':>13} {'py workers MiB':>14}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="headwater-train-bench-") as tmp:
        for factor in (int(s) for s in args.scales.split(",")):
            if factor == 1:
                lake_uri = args.source_lake
                from headwater.core.layout import CLEAN, dataset
                from headwater.data.lake import open_lake

                source, flights = open_lake(lake_uri), dataset("flights", "flights")
                rows = sum(
                    source.manifest(CLEAN, flights, k).rows
                    for k in source.partitions(CLEAN, flights)
                )
            else:
                lake_uri = f"file://{tmp}/x{factor}"
                rows = make_scaled_lake(args.source_lake, lake_uri, factor)
            wall, peaks, steps = submit(
                lake_uri, f"bench-x{factor}-{int(time.time())}", args.driver_memory
            )
            print(
                f"{factor:>5} {rows:>11,} {wall:>8.1f} {rows / wall:>9,.0f} "
                f"{peaks['jvm']:>8.0f} {peaks['python driver']:>13.0f} "
                f"{peaks['python workers (sum)']:>14.0f}",
                flush=True,
            )
            print(step_table(factor, steps), flush=True)
    print(
        "targets: full year (scale 1) <= 60 s including Spark start-up; "
        "time close to linear in rows; driver memory flat"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
