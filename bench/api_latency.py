"""Benchmark the prediction API, in one run, and print the figures against the targets.

1. single-prediction latency through the Flask test client (p50, p99), per use case, and
   through the stage's Lambda handler (an API Gateway event in, as Lambda serves it;
   ``--in-process-only`` runs these alone); then what prediction capture (the default spool
   sink) adds to that p50, per use case, off and on in alternating rounds (``--capture-only``
   runs this part alone); then with a shadow model on against production alone, both
   capturing (``--shadow-only`` runs this part alone);
2. cold start: a fresh process importing the app, loading every use case's model,
   answering once per use case (with the time of ``create_app`` alone), timed from its spawn
   to its last answer (its exit, printed apart, is no part of a cold start: Lambda keeps the
   process for the next request); then the same as
   the Lambda package runs it: without the packages ``zappa_settings.json`` leaves out
   (rich, which structlog imports when installed, among them) and without bytecode (the
   package shipped none before its bytecode, so every module was compiled at every cold
   start); then the built package itself (``make api-package``), unzipped, under the
   runtime's Python (3.13) beside the runtime's boto3, through the stage's Lambda handler
   (``--handler handler.lambda_handler``: Zappa's own), with its bytecode and without it
   (``--package-only`` runs this part alone);
3. throughput and latency over HTTP on loopback against ``headwater serve`` (gunicorn),
   driven by ``wrk`` when installed (apt-get install wrk), else by a small threaded
   client (which shares the two cores with the server: a lower bound);
4. the naive way: load the Spark ``PipelineModel`` and call ``transform`` per request.

    python bench/api_latency.py [--lake file://var/lake] [--seconds 10] [--naive-runs 5]
    python bench/api_latency.py --package-only [--package var/deploy/headwater-api-prod.zip]
        [--lambda-venv .venv-lambda] [--callgrind] [--handler handler.lambda_handler]

The models are the lake's production versions (default: ``var/lake`` after ``make demo``;
without it, the test models of ``tests/headwater/usecases/<name>/model``, which have no
Spark model, so the naive comparison is skipped). The app reads a stage file written for the
run (stage ``bench``: both use cases enabled), as on Lambda.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headwater.core.usecase import get_usecase  # noqa: E402

USECASES = ("flights", "bikeshare")
#: The documented example of each use case (its ServingSpec's).
EXAMPLES = {name: dict(get_usecase(name).serving.example) for name in USECASES}
FLIGHT = EXAMPLES["flights"]
STAGE = "bench"

TARGETS = {
    "p50_ms": 0.5,
    "cold_s": 0.5,
    "rps": 1500.0,
    "ratio": 200.0,
    "shadow_ms": 0.2,
    "capture_ms": 0.05,
}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def test_model_lake(root: Path) -> str:
    """Publish each use case's test model (tests/headwater/usecases/<name>/model) as the
    production versions of a new lake."""
    from headwater.core.layout import model_parts
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    uri = f"file://{root}/lake"
    lake = open_lake(uri)
    for usecase in USECASES:
        source = ROOT / "tests" / "headwater" / "usecases" / usecase / "model"
        version = json.loads((source / "export.json").read_text())["metadata"]["version"]
        for name in ("export.json", "lookups.json", "metrics.json", "lineage.json"):
            lake.write_bytes((source / name).read_bytes(), *model_parts(usecase, version, name))
        registry = Registry(lake, usecase)
        registry.mark_complete(version)
        registry.promote(version, "benchmark")
    return uri


def write_stage(folder: Path, lake: str) -> None:
    """The bench stage file; HEADWATER_CONFIG_DIR and HEADWATER_STAGE point every process at it."""
    tables = "".join(f"[usecase.{name}]\n" for name in USECASES)
    enabled = ", ".join(f'"{name}"' for name in USECASES)
    text = f'usecases = [{enabled}]\n[lake]\nuri = "{lake}"\n{tables}'
    (folder / f"{STAGE}.toml").write_text(text, encoding="utf-8")
    os.environ["HEADWATER_CONFIG_DIR"] = str(folder)
    os.environ["HEADWATER_STAGE"] = STAGE


# -- 1. in-process -------------------------------------------------------------------------------
def in_process(lake: str, n: int, usecase: str) -> dict[str, float]:
    from api import create_app

    client = create_app({"LAKE_URI": lake}).test_client()
    url, example = f"/v1/{usecase}/predictions", EXAMPLES[usecase]
    for _ in range(300):
        client.post(url, json=example)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post(url, json=example)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    baseline = []
    for _ in range(n):
        started = time.perf_counter()
        client.get("/health")
        baseline.append(time.perf_counter() - started)
    ms = [t * 1000 for t in times]
    return {
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "mean": statistics.mean(ms),
        "health_p50": percentile([t * 1000 for t in baseline], 50),
        "n": n,
    }


def in_process_handler(lake: str, n: int, usecase: str) -> dict[str, float]:
    """The same prediction as Lambda serves it: an API Gateway event through the stage's
    handler (apig-wsgi, the app with capture as configured, the access line: JSON to stderr,
    here /dev/null)."""
    import contextlib
    from types import SimpleNamespace

    from api import create_app
    from api.lambda_handler import create_handler
    from headwater.core.logs import configure_logging

    settings = SimpleNamespace(ENVIRONMENT_VARIABLES={}, LOG_LEVEL="INFO", BINARY_SUPPORT=True)
    event = api_gateway_events()[1 + USECASES.index(usecase)]
    context = SimpleNamespace(aws_request_id="bench")
    with open(os.devnull, "w") as sink:
        try:
            with contextlib.redirect_stderr(sink):
                handler = create_handler(settings, create_app({"LAKE_URI": lake}))
            for _ in range(300):
                handler(event, context)
            times = []
            for _ in range(n):
                started = time.perf_counter()
                answer = handler(event, context)
                times.append(time.perf_counter() - started)
                assert answer["statusCode"] == 200, answer
        finally:
            configure_logging(console=False)  # the access lines' handler goes with /dev/null
    ms = [t * 1000 for t in times]
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "n": n}


def print_in_process(lake: str, n: int) -> dict[str, float]:
    """Part 1 for each use case, through the test client and through the Lambda handler;
    returns flights' test-client figures."""
    figures = {}
    for usecase in USECASES:
        result = figures[usecase] = in_process(lake, n, usecase)
        print(
            f"1. in-process, Flask test client, one {usecase} prediction ({result['n']} "
            f"requests): p50 {result['p50']:.3f} ms, p99 {result['p99']:.3f} ms, mean "
            f"{result['mean']:.3f} ms (GET /health: p50 {result['health_p50']:.3f} ms)  "
            f"[target p50 <= {TARGETS['p50_ms']} ms: {verdict(result['p50'] <= TARGETS['p50_ms'])}]"
        )
    for usecase in USECASES:
        result = in_process_handler(lake, n, usecase)
        print(
            f"1. in-process, through the stage's Lambda handler (an API Gateway event, apig-wsgi, "
            f"the access line), one {usecase} prediction ({result['n']} requests): p50 "
            f"{result['p50']:.3f} ms, p99 {result['p99']:.3f} ms  [target p50 <= "
            f"{TARGETS['p50_ms']} ms: {verdict(result['p50'] <= TARGETS['p50_ms'])}]"
        )
    return figures["flights"]


# -- 1a. with capture on -------------------------------------------------------------------------
def in_process_capture(lake: str, n: int, usecase: str, rounds: int = 3) -> dict[str, Any]:
    """A use case's p50 with capture off and on (the spool sink, as ``headwater serve``
    locally), in alternating rounds of ``n`` requests on fresh apps so that load on the
    machine hits both alike; the medians of the rounds' p50."""
    from api import create_app
    from headwater.serving.capture import Capture, SpoolSink

    url, example = f"/v1/{usecase}/predictions", EXAMPLES[usecase]
    p50s: dict[str, list[float]] = {"off": [], "on": []}
    written = 0
    with tempfile.TemporaryDirectory(prefix="headwater-capture-") as folder:
        for _ in range(rounds):
            for name in p50s:
                capture = Capture(SpoolSink(folder)) if name == "on" else None
                client = create_app({"LAKE_URI": lake, "CAPTURE": capture}).test_client()
                _timed(client, url, example, 300)
                p50s[name].append(percentile(_timed(client, url, example, n), 50))
                if capture is not None:
                    capture.close()
                    counters = capture.counters()
                    assert counters["written"] == counters["offered"], counters
                    written += counters["written"]
    return {
        "off_p50": statistics.median(p50s["off"]),
        "on_p50": statistics.median(p50s["on"]),
        "rounds": rounds,
        "n": n,
        "written": written,
    }


def print_capture(usecase: str, result: dict[str, Any]) -> None:
    gap = result["on_p50"] - result["off_p50"]
    on_ok = result["on_p50"] <= TARGETS["p50_ms"]
    print(
        f"1a. in-process, {usecase}, capture (spool) off p50 {result['off_p50']:.3f} ms, on "
        f"{result['on_p50']:.3f} ms: {gap:+.3f} ms (median of {result['rounds']} alternating "
        f"rounds of {result['n']}; {result['written']} records written, none lost)  [targets: "
        f"+{TARGETS['capture_ms']} ms: {verdict(gap <= TARGETS['capture_ms'])}; p50 with "
        f"capture <= {TARGETS['p50_ms']} ms: {verdict(on_ok)}]"
    )


# -- 1b. with a shadow model ---------------------------------------------------------------------
#: The shadow's version in the shadow variant's lake (the same model under another name).
SHADOW_VERSION = "20991231T000000Z-shadow"


def shadow_lake(root: Path) -> str:
    """The test models' lake plus a second flights version, not yet the shadow."""
    from headwater.core.layout import model_parts
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    uri = test_model_lake(root)
    lake = open_lake(uri)
    source = ROOT / "tests" / "headwater" / "usecases" / "flights" / "model"
    export = json.loads((source / "export.json").read_text())
    export["metadata"]["version"] = SHADOW_VERSION
    files = {"export.json": json.dumps(export).encode()}
    for name in ("lookups.json", "metrics.json", "lineage.json"):
        files[name] = (source / name).read_bytes()
    for name, data in files.items():
        lake.write_bytes(data, *model_parts("flights", SHADOW_VERSION, name))
    Registry(lake, "flights").mark_complete(SHADOW_VERSION)
    return uri


def _timed(client: Any, url: str, example: Any, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post(url, json=example)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return times


def in_process_shadow(n: int, rounds: int = 3) -> dict[str, Any]:
    """Flights p50 with capture on, production alone vs with a shadow, in alternating rounds
    (each round: ``n`` requests per app) so that load on the machine hits both alike."""
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry
    from headwater.serving.capture import Capture, LogSink

    with tempfile.TemporaryDirectory(prefix="headwater-shadow-") as folder:
        lake = shadow_lake(Path(folder))
        sink = open(os.devnull, "w")  # closed below, once both captures are
        apps = {}
        from api import create_app

        alone_capture = Capture(LogSink(sink))
        apps["alone"] = (create_app({"LAKE_URI": lake, "CAPTURE": alone_capture}), alone_capture)
        Registry(open_lake(lake), "flights").set_shadow(SHADOW_VERSION, "benchmark")
        shadow_capture = Capture(LogSink(sink))
        apps["shadow"] = (create_app({"LAKE_URI": lake, "CAPTURE": shadow_capture}), shadow_capture)
        url, example = "/v1/flights/predictions", EXAMPLES["flights"]
        clients = {name: app.test_client() for name, (app, _) in apps.items()}
        for client in clients.values():
            _timed(client, url, example, 300)
        p50s: dict[str, list[float]] = {name: [] for name in clients}
        every: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(rounds):
            for name, client in clients.items():
                times = _timed(client, url, example, n)
                p50s[name].append(percentile(times, 50))
                every[name].extend(times)
        counters = {}
        for name, (_, capture) in apps.items():
            capture.close()
            counters[name] = capture.counters()
        sink.close()
    return {
        "alone_p50": statistics.median(p50s["alone"]),
        "shadow_p50": statistics.median(p50s["shadow"]),
        "alone_p99": percentile(every["alone"], 99),
        "shadow_p99": percentile(every["shadow"], 99),
        "rounds": rounds,
        "n": n,
        "shadow_scored": counters["shadow"]["shadow_scored"],
        "shadow_failed": counters["shadow"]["shadow_failed"],
        "written": counters["shadow"]["written"],
    }


def print_shadow(result: dict[str, Any]) -> None:
    gap = result["shadow_p50"] - result["alone_p50"]
    print(
        f"1b. in-process, flights, capture on: production alone p50 {result['alone_p50']:.3f} "
        f"ms (p99 {result['alone_p99']:.3f}), with a shadow p50 {result['shadow_p50']:.3f} ms "
        f"(p99 {result['shadow_p99']:.3f}): {gap:+.3f} ms (median of {result['rounds']} "
        f"alternating rounds of {result['n']}; shadow scored {result['shadow_scored']}, failed "
        f"{result['shadow_failed']}, records written {result['written']})  [target <= "
        f"+{TARGETS['shadow_ms']} ms: {verdict(gap <= TARGETS['shadow_ms'])}]"
    )


def timed_runs(walls: list[float], parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of the wall times, with the parts of the median run."""
    middle = sorted(range(len(walls)), key=lambda i: walls[i])[len(walls) // 2]
    return {
        "median": statistics.median(walls),
        "min": min(walls),
        "max": max(walls),
        "parts": parts[middle],
        "runs": len(walls),
        "exit": statistics.median(part["exit"] for part in parts),
    }


def run_to_answer(command: list[str], **options: Any) -> tuple[float, dict[str, Any]]:
    """Run a cold-start child; the seconds from its spawn to its last answer, and its parts.

    The child prints its parts with ``answered_at`` (``time.monotonic()`` at its last answer:
    CLOCK_MONOTONIC on Linux, one clock for every process). What follows, the interpreter's
    exit (freeing every module and model; 0.09 s before the app froze its imports' objects
    for the collector, 0.015 s since), is no part of a cold start, as Lambda keeps the process
    for the next request; it is kept in the parts as ``exit``.
    """
    spawned = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False, **options)
    exited = time.monotonic()
    if done.returncode:
        raise SystemExit(f"the cold start failed:\n{done.stderr[-3000:]}")
    parts = json.loads(done.stdout.strip().splitlines()[-1])
    parts["exit"] = exited - parts["answered_at"]
    return parts["answered_at"] - spawned, parts


# -- 2. cold start -------------------------------------------------------------------------------
COLD = """
import json, os, sys, time
if os.environ.get("HEADWATER_BENCH_LEFT_OUT"):
    import importlib.abc
    left_out = set(json.loads(os.environ["HEADWATER_BENCH_LEFT_OUT"]))

    class NotInPackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in left_out:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInPackage())
started = time.perf_counter()
from api import create_app
imported = time.perf_counter()
examples = json.loads(sys.argv[2])
client = create_app({"LAKE_URI": sys.argv[1], "USECASES": list(examples)}).test_client()
loaded = time.perf_counter()
for usecase, example in examples.items():
    response = client.post(f"/v1/{usecase}/predictions", json=example)
    assert response.status_code == 200, response.get_data(as_text=True)
answered = time.perf_counter()
print(json.dumps({"import": imported - started, "load": loaded - imported,
                  "first": answered - loaded, "answered_at": time.monotonic()}))
"""
#: What the Lambda runtime provides although zappa_settings.json leaves it out of the package.
RUNTIME_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}


def left_out_of_package() -> list[str]:
    """The top-level modules the prod stage's Lambda package leaves out (zappa_settings.json)."""
    exclude = json.loads((ROOT / "zappa_settings.json").read_text())["prod"]["exclude"]
    names = {n.removesuffix(".py") for n in exclude if re.fullmatch(r"\w+(\.py)?", n)}
    return sorted(names - RUNTIME_MODULES)


def cold_start(
    lake: str, runs: int, usecases: tuple[str, ...] = USECASES, as_package: bool = False
) -> dict[str, Any]:
    """Fresh processes to first answer. ``as_package``: as the Lambda package runs, without
    the modules it leaves out (rich among them, which structlog imports when installed) and
    without bytecode (as it was before it carried its own: every module compiled at each start)."""
    walls, parts = [], []
    examples = {name: EXAMPLES[name] for name in usecases}
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="headwater-no-bytecode-") as empty:
        if as_package:
            env["HEADWATER_BENCH_LEFT_OUT"] = json.dumps(left_out_of_package())
            env["PYTHONPYCACHEPREFIX"] = empty  # bytecode is looked for there only: none
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        for _ in range(runs):
            wall, part = run_to_answer(
                [sys.executable, "-c", COLD, lake, json.dumps(examples)], cwd=ROOT, env=env
            )
            walls.append(wall)
            parts.append(part)
    return timed_runs(walls, parts)


#: The package's own run, as Lambda runs it: its folder and the runtime's boto3 on a path without
#: site-packages, the stage's Lambda handler (``module.function``) answering API Gateway events.
#: The stage's lake and name are swapped for the bench's in the settings the handler copies into
#: the environment.
PACKAGE_COLD = """
import importlib, json, sys, time
sys.path[:0] = sys.argv[3:5]
module, _, function = sys.argv[5].rpartition(".")
started = time.perf_counter()
import zappa_settings
zappa_settings.ENVIRONMENT_VARIABLES.update(json.loads(sys.argv[1]))
handler = getattr(importlib.import_module(module), function)
imported = time.perf_counter()

class Context:
    function_name = aws_request_id = "bench"
    memory_limit_in_mb = 1024
    def get_remaining_time_in_millis(self):
        return 30000

health, *predictions = json.loads(sys.argv[2])
answer = handler(health, Context())
assert answer["statusCode"] == 200, answer
loaded = time.perf_counter()
for event in predictions:
    answer = handler(event, Context())
    assert answer["statusCode"] == 200, answer
answered = time.perf_counter()
print(json.dumps({"import": imported - started, "load": loaded - imported,
                  "first": answered - loaded, "answered_at": time.monotonic()}))
"""
EVENT = ROOT / "tests" / "api" / "events" / "apigw_v1_health.json"


def api_gateway_events() -> list[dict[str, Any]]:
    """GET /health, then one prediction per use case: API Gateway (REST, v1) proxy events."""
    events = []
    for usecase in (None, *USECASES):
        event = json.loads(EVENT.read_text(encoding="utf-8"))
        if usecase is not None:
            path, body = f"/v1/{usecase}/predictions", json.dumps(EXAMPLES[usecase])
            event.update(httpMethod="POST", path=path, body=body)
            event["pathParameters"] = {"proxy": path.lstrip("/")}
            event["requestContext"].update(httpMethod="POST", path=f"/prod{path}")
            headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            event["headers"].update(headers)
            event["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
        events.append(event)
    return events


#: Zappa's handler, which Zappa copies into every package (its ``lambda_handler`` default).
ZAPPA_HANDLER = "handler.lambda_handler"
#: What ``make api-package`` (headwater deploy's api-package step) builds, and where from.
PACKAGE = ROOT / "var" / "deploy" / "headwater-api-prod.zip"
LAMBDA_VENV = ROOT / ".venv-lambda"


def unzip_package(archive: Path, folder: Path, venv: Path) -> tuple[Path, Path, Path]:
    """The package unzipped into ``folder/task``, again without its bytecode (as Zappa alone
    builds it) into ``folder/source``, and ``folder/runtime``: the lean venv's boto3 and its
    dependencies (their bytecode too), which the Lambda runtime provides beside the package."""
    task, source, runtime = folder / "task", folder / "source", folder / "runtime"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(task)
        zipped.extractall(source, [n for n in zipped.namelist() if "/__pycache__/" not in f"/{n}"])
    runtime.mkdir()
    (site_packages,) = (venv / "lib").glob("python3.*/site-packages")
    for name in sorted(RUNTIME_MODULES):
        found = [p for p in (site_packages / name, site_packages / f"{name}.py") if p.exists()]
        if not found:
            raise SystemExit(f"{name} is not in {site_packages}: run make api-package")
        os.symlink(found[0], runtime / found[0].name)
    return task, source, runtime


def package_command(lake: str, python: Path, task: Path, runtime: Path, handler: str) -> list[str]:
    """One fresh process of the runtime's Python running the unzipped package to first answer
    (run it in ``task``): ``-I -S`` (nothing but the package and boto3), ``-B`` (Lambda's disk
    is read-only)."""
    stage = json.dumps({"HEADWATER_STAGE": STAGE, "HEADWATER_LAKE__URI": lake})
    events = json.dumps(api_gateway_events())
    return [str(python), "-I", "-S", "-B", "-c", PACKAGE_COLD, stage, events] + [
        str(task),
        str(runtime),
        handler,
    ]


def package_instructions(lake: str, python: Path, task: Path, runtime: Path, handler: str) -> int:
    """The instructions of one such process, counted by callgrind (the load does not move it)."""
    with tempfile.TemporaryDirectory(prefix="headwater-callgrind-") as out:
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out"]
        command = wrapper + package_command(lake, python, task, runtime, handler)
        done = subprocess.run(command, cwd=task, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the package's cold start failed:\n{done.stderr[-3000:]}")
    return int(re.findall(r"Collected : (\d+)", done.stderr)[-1])


def package_cold_start(
    lake: str, runs: int, python: Path, task: Path, runtime: Path, handler: str
) -> dict[str, Any]:
    """``runs`` fresh processes of :func:`package_command`, each timed to its last answer."""
    walls, parts = [], []
    for _ in range(runs):
        command = package_command(lake, python, task, runtime, handler)
        wall, part = run_to_answer(command, cwd=task, env=dict(os.environ))
        walls.append(wall)
        parts.append(part)
    return timed_runs(walls, parts)


def print_package_cold(
    lake: str,
    runs: int,
    archive: Path,
    venv: Path,
    callgrind: bool = False,
    handler: str | None = None,
) -> None:
    """The unzipped Lambda package's cold start, with its bytecode and without, through
    ``handler`` (default: the prod stage's ``lambda_handler``, else Zappa's)."""
    if not archive.is_file() or not venv.is_dir():
        print(f"2. cold start of the Lambda package: skipped (no {archive}: make api-package)")
        return
    # lazy: only this part needs the deploy code (and its botocore)
    from cli.deploy_steps import find_python, runtime_version, zappa_stage

    stage = zappa_stage(ROOT, "prod")
    runtime_name = stage["runtime"]
    handler = handler or stage.get("lambda_handler", ZAPPA_HANDLER)
    python = find_python(runtime_version(runtime_name))
    if python is None:
        print(f"2. cold start of the Lambda package: skipped (no {runtime_name} interpreter)")
        return
    size = archive.stat().st_size / 2**20
    with tempfile.TemporaryDirectory(prefix="headwater-package-") as folder:
        task, source, runtime = unzip_package(archive, Path(folder), venv)
        for root, how in ((task, "with its bytecode"), (source, "its .pyc left out (as before)")):
            cold = package_cold_start(lake, runs, python, root, runtime, handler)
            parts = cold["parts"]
            print(
                f"2. cold start of the Lambda package ({archive.name}, {size:.2f} MiB, "
                f"unzipped; {python.name} -I -S -B beside the runtime's boto3; {handler}), {how} "
                f"({cold['runs']} runs): median {cold['median']:.3f} s (min {cold['min']:.3f}, "
                f"max {cold['max']:.3f}; inside: import the handler {parts['import']:.3f} s, "
                f"first GET /health (the app built, {len(USECASES)} models loaded; Zappa's "
                f"handler imports the app then) {parts['load']:.3f} s, "
                f"one prediction per use case {parts['first'] * 1000:.1f} ms; then the "
                f"interpreter's exit {cold['exit']:.3f} s, not counted)  [target <= "
                f"{TARGETS['cold_s']} s: {verdict(cold['median'] <= TARGETS['cold_s'])}]"
            )
            if callgrind:
                counted = package_instructions(lake, python, root, runtime, handler)
                print(f"   the same, one run under callgrind: {counted / 1e9:.3f} G instructions")


def print_cold(label: str, cold: dict[str, Any]) -> None:
    parts = cold["parts"]
    print(
        f"2. {label} ({cold['runs']} runs): median "
        f"{cold['median']:.3f} s (min {cold['min']:.3f}, max {cold['max']:.3f}; inside: import "
        f"{parts['import']:.3f} s, create_app + load {len(USECASES)} models {parts['load']:.3f} s, "
        f"first request per use case {parts['first'] * 1000:.1f} ms; then the interpreter's "
        f"exit {cold['exit']:.3f} s, not counted)  [target <= "
        f"{TARGETS['cold_s']} s: {verdict(cold['median'] <= TARGETS['cold_s'])}]"
    )


# -- 3. HTTP against gunicorn --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(lake: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    command = shutil.which("headwater", path=str(Path(sys.executable).parent)) or "headwater"
    process = subprocess.Popen(
        [
            command,
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--lake",
            lake,
            "--stage",
            STAGE,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("headwater serve did not start")


def run_wrk(port: int, seconds: int, connections: int, threads: int) -> dict[str, Any]:
    body = json.dumps(FLIGHT).replace("\\", "\\\\").replace("'", "\\'")
    script = (
        f"wrk.method = 'POST'\nwrk.body = '{body}'\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            file.name,
            f"http://127.0.0.1:{port}/v1/flights/predictions",
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(file.name)

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return {
        "client": f"wrk -t{threads} -c{connections} -d{seconds}s",
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": errors,
    }


def run_threads(port: int, seconds: int, connections: int) -> dict[str, Any]:
    body = json.dumps(FLIGHT).encode()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work() -> None:
        mine, failed = [], 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request(
                    "POST", "/v1/flights/predictions", body, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status != 200:
                    failed += 1
            except OSError:
                failed += 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    ms = [t * 1000 for t in latencies]
    return {
        "client": f"{connections} Python threads, {seconds}s",
        "requests": len(ms),
        "rps": len(ms) / elapsed,
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "errors": errors[0],
    }


def over_http(
    lake: str, seconds: int, workers: int, threads: int, connections: int
) -> dict[str, Any]:
    port = free_port()
    server = start_server(lake, port, workers, threads)
    try:
        if shutil.which("wrk"):
            run_wrk(port, 2, connections, 2)  # warm-up
            result = run_wrk(port, seconds, connections, 2)
        else:
            run_threads(port, 2, connections)
            result = run_threads(port, seconds, connections)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(15)
    return {**result, "workers": workers, "threads": threads}


# -- 4. the naive way ------------------------------------------------------------------------------
def naive_spark(lake: str, runs: int) -> dict[str, Any] | None:
    from headwater.serving.store import ModelStore

    store = ModelStore(lake, "flights")
    pointer = store.production()
    local = lake.removeprefix("file://")
    model_dir = Path(local).resolve() / "models" / "flights" / pointer.version / "spark"
    if not (model_dir / "classifier").is_dir():
        return None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback only
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

    from headwater.usecases.flights.features import FeatureLookups
    from headwater.usecases.flights.serving import FlightRequest, flight_features

    started = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("bench-naive")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    session_seconds = time.perf_counter() - started
    lookups = FeatureLookups.from_dict(store.read_json(pointer.version, "lookups.json"))
    try:

        def one(model: Any = None) -> float:
            begun = time.perf_counter()
            features, _ = flight_features(FlightRequest.model_validate(FLIGHT), lookups)
            model = model or PipelineModel.load(f"file://{model_dir / 'classifier'}")
            row = (
                model.transform(spark.createDataFrame([features]))
                .select("probability", "prediction")
                .first()
            )
            assert 0.0 < float(row.probability[1]) < 1.0
            return time.perf_counter() - begun

        one()  # JIT and class loading: not what the comparison is about
        per_request = [one() for _ in range(runs)]
        loaded = PipelineModel.load(f"file://{model_dir / 'classifier'}")
        one(loaded)
        warm = [one(loaded) for _ in range(runs)]
    finally:
        spark.stop()
    return {
        "per_request_ms": statistics.median(per_request) * 1000,
        "warm_model_ms": statistics.median(warm) * 1000,
        "session_seconds": session_seconds,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", default=None, help="lake URI (default: var/lake if promoted)")
    parser.add_argument("--requests", type=int, default=3000, help="in-process predictions")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10, help="HTTP load duration")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (1: sync)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--naive-runs", type=int, default=5)
    parser.add_argument(
        "--shadow-only", action="store_true", help="only 1b: a shadow vs production alone"
    )
    parser.add_argument(
        "--capture-only", action="store_true", help="only 1a: capture on vs off, per use case"
    )
    parser.add_argument(
        "--in-process-only", action="store_true", help="only 1: test client and Lambda handler"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of 1a and 1b")
    parser.add_argument("--package", type=Path, default=PACKAGE, help="the API's Lambda zip")
    parser.add_argument("--lambda-venv", type=Path, default=LAMBDA_VENV, help="its boto3's venv")
    parser.add_argument(
        "--package-only", action="store_true", help="only 2: the Lambda package's cold start"
    )
    parser.add_argument(
        "--callgrind", action="store_true", help="count the package's cold start (valgrind)"
    )
    parser.add_argument(
        "--handler",
        default=None,
        help=f"the package's Lambda handler to run (default: the prod stage's; {ZAPPA_HANDLER}: "
        "Zappa's own)",
    )
    args = parser.parse_args(argv)
    if args.shadow_only:
        load = os.getloadavg()
        print(f"headwater API benchmark, shadow only; load average {load[0]:.2f} at start")
        print_shadow(in_process_shadow(args.requests, args.rounds))
        print(f"load average at end {os.getloadavg()[0]:.2f}")
        return 0

    temp = tempfile.TemporaryDirectory(prefix="headwater-bench-")
    lake = args.lake
    if lake is None:
        default = ROOT / "var" / "lake"
        promoted = all((default / "models" / u / "PRODUCTION.json").exists() for u in USECASES)
        if promoted:
            lake = f"file://{default}"
        else:
            lake = test_model_lake(Path(temp.name))
    write_stage(Path(temp.name), lake)
    load = os.getloadavg()
    print(
        f"headwater API benchmark: lake {lake}; {os.cpu_count()} cores, load average "
        f"{load[0]:.2f} at start"
    )
    if args.capture_only:
        for usecase in USECASES:
            print_capture(usecase, in_process_capture(lake, args.requests, usecase, args.rounds))
        print(f"load average at end {os.getloadavg()[0]:.2f}")
        temp.cleanup()
        return 0
    if args.package_only:
        print_package_cold(
            lake, args.cold_runs, args.package, args.lambda_venv, args.callgrind, args.handler
        )
        print(f"load average at end {os.getloadavg()[0]:.2f}")
        temp.cleanup()
        return 0

    inproc = print_in_process(lake, args.requests)
    if args.in_process_only:
        print(f"load average at end {os.getloadavg()[0]:.2f}")
        temp.cleanup()
        return 0
    for usecase in USECASES:
        print_capture(usecase, in_process_capture(lake, args.requests, usecase, args.rounds))
    print_shadow(in_process_shadow(args.requests, args.rounds))

    bytecode = "none for the project's modules" if sys.dont_write_bytecode else "cached"
    print_cold(
        f"cold start, fresh process to first answer, this environment (bytecode: {bytecode})",
        cold_start(lake, args.cold_runs),
    )
    print_cold(
        "cold start as the Lambda package ran before it carried bytecode (without the packages "
        "zappa_settings.json leaves out, rich among them; no bytecode anywhere)",
        cold_start(lake, args.cold_runs, as_package=True),
    )
    print_package_cold(
        lake, args.cold_runs, args.package, args.lambda_venv, args.callgrind, args.handler
    )

    for usecase in USECASES:
        alone = cold_start(lake, args.cold_runs, (usecase,))
        print(
            f"2. cold start with {usecase} alone enabled: median {alone['median']:.3f} s "
            f"(create_app + load its model {alone['parts']['load']:.3f} s)"
        )

    http_result = over_http(lake, args.seconds, args.workers, args.threads, args.connections)
    ok = http_result["rps"] >= TARGETS["rps"] and http_result["errors"] == 0
    print(
        f"3. HTTP on loopback, headwater serve ({http_result['workers']} gunicorn workers x "
        f"{http_result['threads']} threads), "
        f"{http_result['client']}: {http_result['requests']} requests, "
        f"{http_result['rps']:.0f} req/s, p50 {http_result['p50']:.2f} ms, p99 "
        f"{http_result['p99']:.2f} ms, {http_result['errors']} errors  [target >= "
        f"{TARGETS['rps']:.0f} req/s, no errors: {verdict(ok)}]"
    )

    naive = naive_spark(lake, args.naive_runs) if args.naive_runs > 0 else None
    if args.naive_runs < 1:
        print("4. naive PySpark: skipped (--naive-runs 0)")
    elif naive is None:
        print("4. naive PySpark: skipped (this lake's version has no Spark model: run make demo)")
    else:
        ratio = naive["per_request_ms"] / inproc["p50"]
        warm_ratio = naive["warm_model_ms"] / inproc["p50"]
        print(
            f"4. naive PySpark, PipelineModel.load + transform per request ({naive['runs']} "
            f"runs, after a {naive['session_seconds']:.1f} s SparkSession start): median "
            f"{naive['per_request_ms']:.0f} ms per prediction -> the API is {ratio:,.0f}x "
            f"faster (model kept loaded, transform only: {naive['warm_model_ms']:.0f} ms, "
            f"{warm_ratio:,.0f}x)  [target >= {TARGETS['ratio']:.0f}x: "
            f"{verdict(ratio >= TARGETS['ratio'])}]"
        )
    load = os.getloadavg()
    print(f"load average at end {load[0]:.2f} (other work on this machine slows every figure)")
    temp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
