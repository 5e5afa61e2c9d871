"""What prediction capture adds to the API's in-process p50, per sink (docs/monitoring.md).

Variants, measured in interleaved rounds through the Flask test client (the harness of
``bench/api_latency.py``), single flights predictions:

* ``off``: no capture;
* ``spool``: the default, queued and written by the capture thread (JSON lines, local lake);
* ``log``: the same, the capture thread writing the structured log line;
* ``log-inline``: the log line built, serialised and written in the request itself;
* ``firehose-inline``: a synchronous ``PutRecordBatch`` per request, to moto on loopback (a
  lower bound of the real network call).

    python bench/capture_latency.py [--n 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_latency import EXAMPLES, percentile, test_model_lake, write_stage  # noqa: E402
from headwater.serving.capture import (  # noqa: E402
    Capture,
    FirehoseSink,
    LogSink,
    SpoolSink,
    record_of,
)


class InlineCapture(Capture):
    """Capture that builds and writes the record in the request (what the queue avoids)."""

    def offer(
        self, model: Any, request: Any, answer: Any, shadow: Any = None, **kwargs: Any
    ) -> bool:
        self.counters_.offered += 1
        self.sink.write([record_of(model, request, answer, **kwargs)])  # no shadow scored here
        self.counters_.written += 1
        return True


def firehose_sink() -> tuple[FirehoseSink, Any]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = {"region_name": "us-east-1", "endpoint_url": endpoint}
    credentials = {"aws_access_key_id": "x", "aws_secret_access_key": "x"}
    s3 = boto3.client("s3", **options, **credentials)
    s3.create_bucket(Bucket="capture")
    firehose = boto3.client("firehose", **options, **credentials)
    firehose.create_delivery_stream(
        DeliveryStreamName="capture",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::capture",
        },
    )
    return FirehoseSink("capture", client=firehose), server


#: Time spent in the API's capture hook, per request (ms): the request path's own cost.
HOOK_MS: dict[str, list[float]] = {}
CURRENT = ["off"]


def time_the_hook() -> None:
    """Wrap the predictions blueprint's capture hook to time each call."""
    import api.blueprints.predictions as predictions

    hook = predictions._capture

    def timed(*args: Any) -> None:
        started = time.perf_counter()
        hook(*args)
        HOOK_MS.setdefault(CURRENT[0], []).append((time.perf_counter() - started) * 1000)

    predictions._capture = timed


def measure(lake: str, capture: Capture | None, n: int) -> float:
    from api import create_app

    client = create_app({"LAKE_URI": lake, "CAPTURE": capture}).test_client()
    url, example = "/v1/flights/predictions", EXAMPLES["flights"]
    for _ in range(200):
        client.post(url, json=example)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post(url, json=example)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    if capture is not None:
        capture.close()
        # every answer captured: a variant failing in the request (logged, the answer sent)
        # would otherwise be timed as if it worked
        written = capture.counters()["written"]
        assert written == n + 200, f"{written} of {n + 200} answers captured"
    return percentile(times, 50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lake = test_model_lake(root)
        write_stage(root, lake)
        sink_file = (root / "capture.log").open("w")
        fire, server = firehose_sink()
        time_the_hook()
        variants = {
            "off": lambda: None,
            "off (again)": lambda: None,
            "spool": lambda: Capture(SpoolSink(root / "spool")),
            "log": lambda: Capture(LogSink(sink_file)),
            "log-inline": lambda: InlineCapture(LogSink(sink_file)),
            "firehose-inline": lambda: InlineCapture(fire),
        }
        p50s: dict[str, list[float]] = {name: [] for name in variants}
        try:
            for _ in range(args.rounds):
                for name, make in variants.items():
                    n = args.n if name != "firehose-inline" else max(200, args.n // 10)
                    CURRENT[0] = name
                    p50s[name].append(measure(lake, make(), n))
        finally:
            server.stop()
            sink_file.close()
    base = statistics.median(p50s["off"])
    print(f"in-process p50, flights, median of {args.rounds} interleaved rounds of {args.n}:")
    for name, values in p50s.items():
        median = statistics.median(values)
        spread = f"{min(values):.4f}..{max(values):.4f}"
        print(f"  {name:16} p50 {median:8.4f} ms   adds {median - base:+8.4f} ms   ({spread})")
    print("the capture hook itself, in the request (the part capture adds for certain):")
    for name, hook in HOOK_MS.items():
        print(
            f"  {name:16} p50 {percentile(hook, 50) * 1000:8.1f} us   "
            f"p99 {percentile(hook, 99) * 1000:8.1f} us   ({len(hook)} calls)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
