"""Stage configuration: TOML files under version control, environment overrides, typed.

Precedence, highest first: explicit overrides passed by the caller, environment
variables ``HEADWATER_<SECTION>__<KEY>``, the stage's file ``config/<stage>.toml``,
then the defaults below. Nothing is read at import time: call :func:`load_settings`.
"""

import os
import tomllib
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from headwater.core.partitions import resolve_date

ENV_PREFIX = "HEADWATER_"
STAGE_ENV = "HEADWATER_STAGE"
CONFIG_DIR_ENV = "HEADWATER_CONFIG_DIR"
DEFAULT_STAGE = "local"


class ConfigError(ValueError):
    """A configuration file or override is missing or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LakeConfig(_Section):
    uri: str = "file://var/lake"

    @field_validator("uri")
    @classmethod
    def _names_a_place(cls, uri: str) -> str:
        # file:// alone would put raw/, clean/ and quarantine/ in the working directory
        # (an s3:// URI without a bucket is the pre-run checks' to name, with the others).
        scheme, _, rest = uri.partition("://")
        if scheme == "file" and rest.strip().strip("/") == "":
            raise ValueError(
                "names no directory: use file://PATH (relative to the working directory) "
                "or file:///absolute/path"
            )
        return uri


class PartitioningConfig(_Section):
    grain: Literal["day", "month"] = "month"
    # A partition published less than this long after its period ended is re-run.
    settle_hours: Annotated[int, Field(ge=0)] = 0


class SourceConfig(BaseModel):
    """One source of a use case, as configured: its ``kind`` and that kind's own keys.

    Kinds are a registry (:mod:`headwater.data.sources`); the keys are validated by the
    kind's own model when the source is used (and by ``headwater run`` before any work),
    so reading the settings never imports a source's libraries (the API reads them too).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Annotated[str, Field(min_length=1)]

    def options(self) -> dict[str, Any]:
        """The kind-specific keys."""
        return dict(self.model_extra or {})


class ExecutorConfig(_Section):
    kind: Literal["inprocess", "lambda"] = "inprocess"
    extract_function: str = "headwater-extract"
    clean_function: str = "headwater-clean"


class NotifyConfig(_Section):
    kind: Literal["outbox", "sns"] = "outbox"
    outbox: str = "var/outbox"
    topic_arn: str = ""


class RunConfig(_Section):
    workers: Annotated[int, Field(ge=1, le=256)] = 2
    log_dir: str = "var/logs"
    state_dir: str = "var/runs"
    # How many weather extractions may run at once (a Luigi resource): with the
    # per-invocation rate limit this bounds the total request rate on the API.
    api_concurrency: Annotated[int, Field(ge=1)] = 2


class AwsConfig(_Section):
    region: str = "us-east-1"
    endpoint_url: str | None = None


#: The lowest two-sided confidence the gate accepts: 0.8 is a one-sided 90% lower bound.
MIN_GATE_CONFIDENCE = 0.8


class GateConfig(_Section):
    """The quality gate a use case's candidate model must pass to be promoted.

    Each setting has its one default here (:mod:`headwater.registry.gate` and the training
    job read it from this model); what the gate guarantees is in ``docs/gate.md``.
    """

    metric: str = "auc_roc"
    # How much better the candidate must surely be (the interval's lower bound must exceed it).
    margin: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.002
    # The holdout both models are scored on must be at least this large to compare them.
    min_holdout_rows: Annotated[int, Field(ge=0)] = 1000
    # Four weeks: with fewer days, equal models were promoted more than 5% of the time
    # when their difference persists from day to day (bench/gate_simulation.py).
    min_holdout_days: Annotated[int, Field(ge=0)] = 28
    # Two-sided confidence of the interval on (candidate - production); its lower bound
    # must clear the margin, so 0.95 two-sided is a 97.5% one-sided lower bound.
    confidence: Annotated[float, Field(ge=MIN_GATE_CONFIDENCE, lt=1)] = 0.95
    # A candidate trained on fewer days than this share of production's is not promoted...
    min_window_ratio: Annotated[float, Field(ge=0)] = 0.5
    # ...unless this is set (or `headwater run --allow-shorter-window`).
    allow_shorter_window: bool = False


class MonitoringConfig(_Section):
    """How a use case's served models are watched (``[usecase.<name>.monitoring]``).

    Unset thresholds are the measures' own (``headwater.monitoring.drift``: PSI 0.2,
    Jensen-Shannon 0.1), raised per input to its largest drift over the version's quiet
    training months; a feature named in ``features`` keeps the threshold given here.
    """

    psi: Annotated[float, Field(gt=0)] | None = None
    js: Annotated[float, Field(gt=0, le=1)] | None = None
    # Per model input (or served output, e.g. the probability's answer key), its threshold.
    features: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    # Fewer predictions with an outcome (served, for skew): no performance (skew) alert.
    min_predictions: Annotated[int, Field(ge=1)] = 100


class UseCaseConfig(_Section):
    """The configuration of one use case in a stage: its sources, time zone and gate."""

    # The module holding USECASE (default: headwater.usecases.<name>).
    module: str | None = None
    # Partitions are local calendar periods of this zone (default: the use case's own).
    timezone: str | None = None
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    gate: GateConfig = GateConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    holdout_from: str | None = None  # ISO date; default: the last sixth of the range
    # Fewer clean rows than this in the range: training is refused, naming them.
    min_training_rows: Annotated[int, Field(ge=1)] = 100
    # The range `headwater run` covers when given no dates: YYYY-MM-DD, today, yesterday or
    # today-N, days of the use case's time zone (end defaults to start).
    start: str | None = None
    end: str | None = None

    @field_validator("start", "end")
    @classmethod
    def _is_a_run_date(cls, value: str | None) -> str | None:
        if value is not None:
            resolve_date(value, date.today())  # the form only; its error names the value
        return value

    @model_validator(mode="after")
    def _start_with_end(self) -> Self:
        if self.end is not None and self.start is None:
            raise ValueError("end is set but start is not: set start (and end, or not)")
        return self


class CaptureConfig(_Section):
    """Prediction capture (``[api.capture]``): which answers are recorded, and where to."""

    enabled: bool = False
    # The share of answered instances recorded (1.0: every one).
    sample_rate: Annotated[float, Field(ge=0, le=1)] = 1.0
    # spool: JSON lines under the local lake; log: one line on stdout (Lambda -> CloudWatch
    # Logs -> Firehose); firehose: PutRecordBatch from the API (docs/monitoring.md, Capture).
    sink: Literal["spool", "log", "firehose"] = "spool"
    firehose_stream: str = ""
    # Records waiting for the capture thread at most; beyond, they are dropped and counted.
    queue_size: Annotated[int, Field(ge=1)] = 10_000
    # The capture thread writes at least this often (a kill -9 loses at most this much).
    flush_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5


class ApiConfig(_Section):
    """The prediction API's own knobs (``HEADWATER_API__MAX_BATCH`` and so on)."""

    max_batch: Annotated[int, Field(ge=1)] = 1000  # instances per request; more is a 400
    reload_seconds: Annotated[float, Field(ge=0)] = 30.0  # PRODUCTION pointers re-read at most
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024  # a larger body is a 413
    capture: CaptureConfig = CaptureConfig()


class EmrConfig(_Section):
    """A transient EMR cluster per training run (prod)."""

    release_label: str = "emr-7.13.0"  # Spark 3.5.6, Python 3.11
    log_uri: str = ""
    artifacts_uri: str = ""  # where the job's code and dependencies are shipped, per run
    service_role: str = "EMR_DefaultRole"
    job_flow_role: str = "EMR_EC2_DefaultRole"
    master_instance_type: str = "m7g.xlarge"
    core_instance_type: str = "m7g.xlarge"
    core_instance_count: Annotated[int, Field(ge=1)] = 2
    core_spot: bool = True
    idle_timeout_seconds: Annotated[int, Field(ge=60)] = 900
    subnet_id: str | None = None
    cost_centre: str = "data-science"


class TrainingConfig(_Section):
    """How and where the models are trained."""

    runner: Literal["local", "emr"] = "local"
    master: str = "local[2]"
    driver_memory: str = "4g"
    driver_java_options: str = "-XX:+UseParallelGC"  # throughput GC: faster on short batch jobs
    shuffle_partitions: Annotated[int, Field(ge=1)] = 8
    reg_param: Annotated[float, Field(ge=0)] = 0.001
    timeout_seconds: Annotated[int, Field(ge=60)] = 3600
    emr: EmrConfig = EmrConfig()


class Settings(_Section):
    """The validated configuration of one stage."""

    stage: str = DEFAULT_STAGE
    # The enabled use cases of the stage, in order; each has a [usecase.<name>] table.
    usecases: tuple[str, ...] = ()
    usecase: dict[str, UseCaseConfig] = Field(default_factory=dict)
    lake: LakeConfig = LakeConfig()
    partitioning: PartitioningConfig = PartitioningConfig()
    executor: ExecutorConfig = ExecutorConfig()
    notify: NotifyConfig = NotifyConfig()
    run: RunConfig = RunConfig()
    aws: AwsConfig = AwsConfig()
    training: TrainingConfig = TrainingConfig()
    api: ApiConfig = ApiConfig()

    @model_validator(mode="after")
    def _enabled_are_configured(self) -> Self:
        missing = [name for name in self.usecases if name not in self.usecase]
        if missing:
            raise ValueError(
                f"enabled use case(s) {', '.join(missing)} have no [usecase.<name>] table"
            )
        if len(set(self.usecases)) != len(self.usecases):
            raise ValueError(f"usecases lists a use case twice: {list(self.usecases)}")
        return self

    def usecase_config(self, name: str) -> UseCaseConfig:
        """Return the configuration of use case ``name`` or fail naming the configured ones."""
        try:
            return self.usecase[name]
        except KeyError:
            known = ", ".join(sorted(self.usecase)) or "none"
            raise ConfigError(
                f"use case {name!r} is not configured (configured: {known})"
            ) from None

    def source(self, usecase: str, name: str) -> SourceConfig:
        """Return source ``name`` of ``usecase`` or fail naming the configured ones."""
        sources = self.usecase_config(usecase).sources
        try:
            return sources[name]
        except KeyError:
            known = ", ".join(sorted(sources)) or "none"
            raise ConfigError(
                f"source {name!r} of use case {usecase!r} is not configured (known: {known})"
            ) from None

    def select(self, names: Sequence[str] | None) -> tuple[str, ...]:
        """The use cases to act on: ``names`` (each must be configured), else the enabled ones."""
        if not names:
            return self.usecases
        for name in names:
            self.usecase_config(name)
        return tuple(names)


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the directory holding the stage files."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_DIR_ENV):
        return Path(env[CONFIG_DIR_ENV])
    cwd = Path.cwd() / "config"
    if cwd.is_dir():
        return cwd
    return Path(__file__).resolve().parents[2] / "config"


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``HEADWATER_A__B=v`` variables into a nested ``{"a": {"b": "v"}}`` mapping."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another override")
        if isinstance(node.get(path[-1]), dict):
            raise ConfigError(f"environment variable {name} conflicts with another override")
        node[path[-1]] = value
    return out


def _describe(error: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  {key}: {item['msg']}{shown}")
    return "\n".join(lines)


def load_settings(
    stage: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load and validate the settings of ``stage`` (default: $HEADWATER_STAGE or local)."""
    env = os.environ if environ is None else environ
    stage = stage or env.get(STAGE_ENV) or DEFAULT_STAGE
    path = config_dir(env) / f"{stage}.toml"
    if not path.is_file():
        raise ConfigError(f"no configuration for stage {stage!r}: {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    data = _deep_merge(data, env_overrides(env))
    data = _deep_merge(data, dict(overrides or {}))
    data["stage"] = stage
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, f"{path} plus HEADWATER_* overrides")) from None
