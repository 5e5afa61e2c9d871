"""Where everything lives in the lake: the one definition of its paths (standard library only).

Data zones are namespaced by use case, then by dataset::

    raw/<usecase>/<source>/<partition>/          part-*.parquet + _manifest.json
    clean/<usecase>/<dataset>/<partition>/
    quarantine/<usecase>/<source>/<partition>/
    predictions/<usecase>/<partition>/          captured predictions, collected (deduplicated)
    monitoring/<usecase>/<partition>/           live performance and drift of the partition
    reports/<usecase>/monitoring.html           the monitoring report over every partition

captured predictions land first as JSON lines, before collection::

    capture/<usecase>/<YYYY-MM-DD>/<HH>/<process>.jsonl     the API's local spool
    capture/_stream/<YYYY-MM-DD>/<HH>/<object>              Firehose's delivery (every use case)

and the model registry by use case (the model's name is the use case's)::

    models/<usecase>/PRODUCTION.json             the production pointer (compare-and-swap)
    models/<usecase>/SHADOW.json                 the shadow pointer (compare-and-swap; version
                                                 null once switched off)
    models/<usecase>/<version>/                  export.json lookups.json metrics.json
                                                 lineage.json profile.json report.html
                                                 decision.json
                                                 spark/{classifier,regressor}/  _SUCCESS last

The training job, the registry (through pyarrow) and the API's stdlib reader
(:mod:`headwater.serving.store`) all build their paths here.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from urllib.parse import urlparse

RAW, CLEAN, QUARANTINE, MODELS = "raw", "clean", "quarantine", "models"
CAPTURE, PREDICTIONS = "capture", "predictions"
#: Per partition, the monitoring record (headwater.monitoring.monitor.PartitionMonitoring).
MONITORING = "monitoring"
#: Pages rendered for people from the zones above (never read back by the platform).
REPORTS = "reports"
MONITORING_REPORT = "monitoring.html"
#: The capture folder Firehose delivers to (all use cases together; not a use case's name).
CAPTURE_STREAM = "_stream"

POINTER = "PRODUCTION.json"
#: The version the API scores beside production on the same requests, recorded only.
SHADOW = "SHADOW.json"
#: The registry's pointer files beside the versions of a model (never a version's name).
POINTERS = frozenset({POINTER, SHADOW})
SUCCESS = "_SUCCESS"
EXPORT = "export.json"
LOOKUPS = "lookups.json"
METRICS = "metrics.json"
LINEAGE = "lineage.json"
#: The version's reference for monitoring: input and prediction profiles, calibration, null.
PROFILE = "profile.json"
DECISION = "decision.json"
REPORT = "report.html"
SPARK = "spark"
CLASSIFIER, REGRESSOR = "classifier", "regressor"
#: The files of a version that decide the API's answers: their checksums are taken when the
#: version is promoted (in the pointer) and verified whenever serving loads them.
#: The API reads the profile for ``out_of_range``, so it is verified like the export.
SERVING_FILES = (EXPORT, LOOKUPS, PROFILE)
#: Serving files a version may lack (trained before they existed): it is served without what
#: they add, provided the file is still absent (one written after promotion is refused).
OPTIONAL_SERVING_FILES = frozenset({PROFILE})


def dataset(usecase: str, name: str) -> str:
    """The lake dataset of source or clean dataset ``name`` of ``usecase`` (below a zone).

    An empty ``name`` is the use case's one dataset of a zone (``predictions/<usecase>/``).
    """
    return f"{usecase}/{name}" if name else usecase


def model_parts(model: str, *rest: str) -> tuple[str, ...]:
    """Path parts of ``models/<model>/...`` (a version and a file name, or the pointer)."""
    return (MODELS, model, *rest)


def monitoring_report_parts(usecase: str) -> tuple[str, ...]:
    """Path parts of a use case's monitoring report: ``reports/<usecase>/monitoring.html``.

    Not below ``monitoring/<usecase>/``: that folder holds only partitions.
    """
    return (REPORTS, usecase, MONITORING_REPORT)


def local_root(lake_uri: str) -> Path | None:
    """The directory of a ``file://`` lake (``file://var/lake``: below the cwd), else None."""
    parsed = urlparse(lake_uri)
    if parsed.scheme != "file":
        return None
    return Path(parsed.netloc + parsed.path).expanduser().resolve()


def capture_parts(source: str, day: str, hour: str) -> tuple[str, ...]:
    """Path parts of one hour of captured lines: ``capture/<source>/<YYYY-MM-DD>/<HH>``.

    ``source`` is a use case (the local spool) or :data:`CAPTURE_STREAM` (Firehose).
    """
    return (CAPTURE, source, day, hour)


#: The partition keys of reference-table snapshots start with this.
SNAPSHOT_PREFIX = "snapshot="


def snapshot_key(as_of: date) -> str:
    """The partition key of a reference-table snapshot taken on ``as_of``."""
    return f"{SNAPSHOT_PREFIX}{as_of.isoformat()}"
