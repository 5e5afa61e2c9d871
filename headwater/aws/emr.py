"""EMR: one Spark step on a transient cluster, launched once per run and waited for by its step.

The cluster is launched with its one step inline, KeepJobFlowAliveWhenNoSteps=False and an
idle AutoTerminationPolicy, so it ends itself when the step ends. The runner decides on the
STEP's state only: a cluster in RUNNING or WAITING says nothing about the job's outcome.

Idempotency: every cluster carries the tag EMR_RUN_ID_TAG = run_id. run() first looks for an
active (STARTING, BOOTSTRAPPING, RUNNING, WAITING) cluster with that tag and, if there is
one, resumes polling its step instead of launching another. Only active clusters are
adopted: a finished run is recorded by the calling task's own output, not by EMR history.
Any exception raised while run() is responsible for a cluster, KeyboardInterrupt and
SystemExit included, terminates that cluster before propagating, so a cluster is only left
behind when the orchestrator dies without running Python code (SIGKILL, OOM killer, host
loss). That is the one case adoption exists for. Limits: RunJobFlow has no idempotency
token, so two orchestrators starting the same run at the same moment (the scheduler must
prevent that) or a botocore retry of a RunJobFlow whose answer was lost can still launch a
second cluster; the oldest is adopted and the other ends with its step or its idle timeout.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.client import BaseClient
from tenacity import Retrying, retry_if_result

from headwater.aws import clients
from headwater.aws.errors import EmrStepFailed, EmrTimeout
from headwater.aws.s3 import read_object_tail, split_s3_uri
from headwater.core.logs import get_logger

log = get_logger("headwater.aws")

T = TypeVar("T")

EMR_RUN_ID_TAG = "headwater:run-id"
EMR_ACTIVE_CLUSTER_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
EMR_STEP_FAILED_STATES = frozenset({"FAILED", "CANCELLED", "INTERRUPTED"})
EMR_ARROW_CONF = "spark.sql.execution.arrow.pyspark.enabled"
# AutoTerminationPolicy accepts an idle timeout from one minute to seven days.
EMR_MIN_IDLE_SECONDS = 60
EMR_MAX_IDLE_SECONDS = 7 * 24 * 3600
EMR_LOG_TAIL_LINES = 50
EMR_LOG_TAIL_BYTES = 8 * 1024


@dataclass(frozen=True, kw_only=True)
class EmrJobSpec:
    """What to run on a transient EMR cluster: instances, software, the one Spark step, tags."""

    name: str
    release_label: str
    log_uri: str
    service_role: str
    job_flow_role: str
    master_instance_type: str
    core_instance_type: str
    core_instance_count: int
    step_name: str
    step_args: Sequence[str]
    core_spot: bool = False
    idle_timeout_seconds: int = 3600
    bootstrap_actions: Sequence[tuple[str, str, Sequence[str]]] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    subnet_id: str | None = None
    python_executable: str = "/usr/bin/python3"
    spark_conf: Mapping[str, str] = field(default_factory=lambda: {EMR_ARROW_CONF: "true"})

    def __post_init__(self) -> None:
        # Freeze the sequences and copy the mappings: a spec must not change after validation.
        set_field = object.__setattr__
        set_field(self, "step_args", tuple(str(arg) for arg in self.step_args))
        actions = tuple(
            (str(name), str(path), tuple(str(arg) for arg in args))
            for name, path, args in self.bootstrap_actions
        )
        set_field(self, "bootstrap_actions", actions)
        set_field(self, "tags", {str(k): str(v) for k, v in self.tags.items()})
        conf = {str(k): _spark_conf_value(v) for k, v in self.spark_conf.items()}
        if conf.setdefault(EMR_ARROW_CONF, "true") != "true":
            raise ValueError(f"{EMR_ARROW_CONF} must be 'true': the training job uses pandas UDFs")
        set_field(self, "spark_conf", conf)
        if not self.step_args:
            raise ValueError("step_args must hold the command to run (e.g. spark-submit ...)")
        if self.core_instance_count < 0:
            raise ValueError(f"core_instance_count must be >= 0, got {self.core_instance_count}")
        if not EMR_MIN_IDLE_SECONDS <= self.idle_timeout_seconds <= EMR_MAX_IDLE_SECONDS:
            raise ValueError(
                f"idle_timeout_seconds must be within {EMR_MIN_IDLE_SECONDS}.."
                f"{EMR_MAX_IDLE_SECONDS}, got {self.idle_timeout_seconds}"
            )
        split_s3_uri(self.log_uri)
        for _, path, _ in self.bootstrap_actions:
            split_s3_uri(path)


def _spark_conf_value(value: object) -> str:
    """Render a Spark property as EMR expects it: a string, booleans in lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_job_flow_request(spec: EmrJobSpec, run_id: str) -> dict[str, Any]:
    """Build the RunJobFlow parameters for one transient cluster running spec's step."""
    if not run_id:
        raise ValueError("run_id must not be empty: it is how a retry finds its cluster")
    groups: list[dict[str, Any]] = [
        {
            "Name": "master",
            "InstanceRole": "MASTER",
            "Market": "ON_DEMAND",
            "InstanceType": spec.master_instance_type,
            "InstanceCount": 1,
        }
    ]
    if spec.core_instance_count:
        # No BidPrice: a SPOT group without one bids up to the on-demand price.
        groups.append(
            {
                "Name": "core",
                "InstanceRole": "CORE",
                "Market": "SPOT" if spec.core_spot else "ON_DEMAND",
                "InstanceType": spec.core_instance_type,
                "InstanceCount": spec.core_instance_count,
            }
        )
    instances: dict[str, Any] = {
        "InstanceGroups": groups,
        "KeepJobFlowAliveWhenNoSteps": False,
        "TerminationProtected": False,
    }
    if spec.subnet_id:
        instances["Ec2SubnetId"] = spec.subnet_id
    tags = {**spec.tags, EMR_RUN_ID_TAG: run_id}
    return {
        "Name": spec.name,
        "ReleaseLabel": spec.release_label,
        "Applications": [{"Name": "Spark"}],
        "LogUri": spec.log_uri,
        "Instances": instances,
        "Steps": [
            {
                "Name": spec.step_name,
                "ActionOnFailure": "TERMINATE_CLUSTER",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": list(spec.step_args)},
            }
        ],
        "BootstrapActions": [
            {"Name": name, "ScriptBootstrapAction": {"Path": path, "Args": list(args)}}
            for name, path, args in spec.bootstrap_actions
        ],
        "Configurations": [
            {"Classification": "spark-defaults", "Properties": dict(spec.spark_conf)},
            {
                # Workers run pandas UDFs, so they need the interpreter that has pandas/pyarrow.
                "Classification": "spark-env",
                "Properties": {},
                "Configurations": [
                    {
                        "Classification": "export",
                        "Properties": {"PYSPARK_PYTHON": spec.python_executable},
                    }
                ],
            },
        ],
        "AutoTerminationPolicy": {"IdleTimeout": spec.idle_timeout_seconds},
        "ServiceRole": spec.service_role,
        "JobFlowRole": spec.job_flow_role,
        "VisibleToAllUsers": True,
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
    }


@dataclass(frozen=True)
class EmrRunResult:
    """The outcome of EmrRunner.run: which cluster and step ran, and whether it was adopted."""

    cluster_id: str
    step_id: str
    state: str
    reused: bool


class EmrRunner:
    """Runs one Spark step on a transient EMR cluster and waits for the step's outcome."""

    def __init__(
        self,
        region: str | None = None,
        client: BaseClient | None = None,
        s3_client: BaseClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_initial: float = 15.0,
        poll_max: float = 120.0,
        *,
        jitter: float = 0.1,
        log_wait_seconds: float = 120.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < poll_initial <= poll_max:
            raise ValueError(f"need 0 < poll_initial <= poll_max, got {poll_initial}, {poll_max}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter is a fraction in [0, 1), got {jitter}")
        self.region = region
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.jitter = jitter
        self.log_wait_seconds = log_wait_seconds
        self._client = client
        self._s3 = s3_client
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    @property
    def client(self) -> BaseClient:
        """Return the EMR client, creating the shared one on first use."""
        if self._client is None:
            self._client = clients.client("emr", self.region)
        return self._client

    @property
    def s3(self) -> BaseClient:
        """Return the S3 client that reads step logs, creating the shared one on first use."""
        if self._s3 is None:
            self._s3 = clients.client("s3", self.region)
        return self._s3

    def poll_interval(self, poll: int) -> float:
        """Return the wait after poll number poll (0-based): doubling to poll_max, minus jitter."""
        ceiling = min(self.poll_max, self.poll_initial * 2**poll)
        # Jitter only shortens the wait, so poll_max stays a hard cap.
        return ceiling * (1 - self._rng.uniform(0, self.jitter))

    def run(self, spec: EmrJobSpec, run_id: str, timeout_seconds: float) -> EmrRunResult:
        """Run spec's step for run_id on a transient cluster (adopting a live one) and wait."""
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        deadline = self._clock() + timeout_seconds
        found = self.find_active_run(spec, run_id)
        reused = found is not None
        cluster_id, step_id = found if found is not None else (self._launch(spec, run_id), None)
        # From here on this call owns a cluster: whatever happens, it must not outlive us.
        try:
            if step_id is None:
                step_id = self._step_id(cluster_id, spec.step_name)
                if step_id is None:
                    raise RuntimeError(
                        f"EMR cluster {cluster_id} has no step named {spec.step_name!r}"
                    )
            status = self._wait_for_step(cluster_id, step_id, deadline, timeout_seconds)
            state = str(status.get("State"))
            if state == "COMPLETED":
                log.info("EMR step completed", step_id=step_id, cluster_id=cluster_id)
                return EmrRunResult(cluster_id, step_id, state, reused)
            reason = self._failure_reason(cluster_id, status)
        except BaseException as exc:
            _add_note(exc, self._terminate(cluster_id))
            raise
        # Terminating first also makes EMR push the step's final logs to S3.
        note = self._terminate(cluster_id)
        log_tail = self._read_step_log_tail(spec.log_uri, cluster_id, step_id)
        error = EmrStepFailed(cluster_id, step_id, state, reason, log_tail)
        _add_note(error, note)
        raise error

    def find_active_run(self, spec: EmrJobSpec, run_id: str) -> tuple[str, str | None] | None:
        """Return (cluster_id, step_id) of a live cluster tagged with run_id, or None.

        step_id is None when the cluster has no step named spec.step_name; such a stray
        cluster is terminated here and None is returned so that a fresh one is launched.
        """
        matches = self._active_clusters_of(run_id)
        if not matches:
            return None
        if len(matches) > 1:
            log.warning(
                "several live EMR clusters of the run, adopting the oldest",
                run_id=run_id,
                clusters=", ".join(m["Id"] for m in matches),
            )
        cluster_id = str(matches[0]["Id"])
        step_id = self._step_id(cluster_id, spec.step_name)
        if step_id is None:
            log.warning(
                "EMR cluster of the run has no such step, terminating it",
                cluster_id=cluster_id,
                run_id=run_id,
                step_name=spec.step_name,
            )
            self.client.terminate_job_flows(JobFlowIds=[cluster_id])
            return None
        log.info("adopting EMR cluster", cluster_id=cluster_id, step_id=step_id, run_id=run_id)
        return cluster_id, step_id

    def _active_clusters_of(self, run_id: str) -> list[dict[str, Any]]:
        """Return the live clusters tagged with run_id, oldest first."""
        matches = []
        pages = self.client.get_paginator("list_clusters").paginate(
            ClusterStates=list(EMR_ACTIVE_CLUSTER_STATES)
        )
        for page in pages:
            for summary in page.get("Clusters", []):
                # ListClusters carries no tags, so each live cluster is described once.
                cluster = self.client.describe_cluster(ClusterId=summary["Id"])["Cluster"]
                tags = {t.get("Key"): t.get("Value") for t in cluster.get("Tags", [])}
                state = cluster.get("Status", {}).get("State")
                if tags.get(EMR_RUN_ID_TAG) == run_id and state in EMR_ACTIVE_CLUSTER_STATES:
                    matches.append(cluster)
        return sorted(matches, key=_cluster_creation_time)

    def _launch(self, spec: EmrJobSpec, run_id: str) -> str:
        """Start the transient cluster for run_id and return its id."""
        request = build_job_flow_request(spec, run_id)
        try:
            response = self.client.run_job_flow(**request)
        except BaseException as exc:
            # RunJobFlow has no idempotency token: when its answer is lost (timeout, interrupt)
            # EMR may still have started the cluster, so look before giving up.
            survivors = self._clusters_after_failed_launch(run_id)
            if survivors and isinstance(exc, Exception):
                log.warning(
                    "RunJobFlow failed but the cluster exists, adopting it",
                    run_id=run_id,
                    error=repr(exc),
                    cluster_id=survivors[0],
                )
                return survivors[0]
            for cluster_id in survivors:
                _add_note(exc, self._terminate(cluster_id))
            raise
        cluster_id = str(response["JobFlowId"])
        log.info(
            "EMR cluster launched",
            cluster_id=cluster_id,
            name=spec.name,
            release_label=spec.release_label,
            run_id=run_id,
        )
        return cluster_id

    def _clusters_after_failed_launch(self, run_id: str) -> list[str]:
        """Return the ids of live clusters of run_id, or [] when even that lookup fails."""
        try:
            return [str(c["Id"]) for c in self._active_clusters_of(run_id)]
        except Exception as exc:
            log.warning("could not look for clusters of the run", run_id=run_id, error=str(exc))
            return []

    def _step_id(self, cluster_id: str, step_name: str) -> str | None:
        """Return the id of the newest step named step_name on the cluster, or None."""
        for page in self.client.get_paginator("list_steps").paginate(ClusterId=cluster_id):
            # ListSteps returns the newest step first.
            for step in page.get("Steps", []):
                if step.get("Name") == step_name:
                    return str(step["Id"])
        return None

    def _wait_for_step(
        self, cluster_id: str, step_id: str, deadline: float, timeout_seconds: float
    ) -> dict[str, Any]:
        """Poll the step until it is COMPLETED, FAILED, CANCELLED or INTERRUPTED; return Status."""
        previous: list[str] = []

        def describe() -> dict[str, Any]:
            step = self.client.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]
            status: dict[str, Any] = step.get("Status", {})
            state = str(status.get("State", "UNKNOWN"))
            if not previous or state != previous[-1]:
                log.info(
                    "EMR step state changed",
                    step_id=step_id,
                    step_name=step.get("Name", "?"),
                    cluster_id=cluster_id,
                    previous=previous[-1] if previous else "(start)",
                    state=state,
                )
                previous.append(state)
            return status

        status = self._poll_until(describe, _step_finished, deadline, self.poll_interval)
        if not _step_finished(status):
            state = str(status.get("State", "UNKNOWN"))
            raise EmrTimeout(cluster_id, step_id, state, timeout_seconds)
        return status

    def _poll_until(
        self,
        attempt: Callable[[], T],
        done: Callable[[T], bool],
        deadline: float,
        interval: Callable[[int], float],
    ) -> T:
        """Call attempt until done(result) or the deadline passes; return the last result.

        The wait after poll number n (0-based) is interval(n), cut short at the deadline;
        an exception raised by attempt is not retried.
        """
        retrying = Retrying(
            retry=retry_if_result(lambda result: not done(result)),
            stop=lambda _: self._clock() >= deadline,
            wait=lambda state: min(interval(state.attempt_number - 1), deadline - self._clock()),
            sleep=self._sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        return retrying(attempt)

    def _terminate(self, cluster_id: str) -> str | None:
        """Terminate the cluster; on failure return a note for the error being raised."""
        try:
            self.client.terminate_job_flows(JobFlowIds=[cluster_id])
        except Exception as exc:
            # Raising this would hide the error that made us terminate: report it beside it.
            log.error("could not terminate EMR cluster", cluster_id=cluster_id, error=str(exc))
            return f"terminating EMR cluster {cluster_id} failed too: {exc!r}"
        log.info("terminating EMR cluster", cluster_id=cluster_id)
        return None

    def _failure_reason(self, cluster_id: str, status: Mapping[str, Any]) -> str:
        """Describe why the step failed: its FailureDetails, else the state change reasons."""
        details = status.get("FailureDetails") or {}
        parts = [str(details[k]) for k in ("Reason", "Message") if details.get(k)]
        if details.get("LogFile"):
            parts.append(f"(log: {details['LogFile']})")
        if not parts:
            change = status.get("StateChangeReason") or {}
            parts = [str(change[k]) for k in ("Code", "Message") if change.get(k)]
        try:
            cluster = self.client.describe_cluster(ClusterId=cluster_id)["Cluster"]
        except Exception as exc:  # the reason is a courtesy: never let it mask the failure
            log.warning("could not describe EMR cluster", cluster_id=cluster_id, error=str(exc))
        else:
            change = cluster.get("Status", {}).get("StateChangeReason") or {}
            cluster_reason = ": ".join(str(change[k]) for k in ("Code", "Message") if change.get(k))
            if cluster_reason:
                parts.append(f"[cluster: {cluster_reason}]")
        return " ".join(parts)

    def _read_step_log_tail(self, log_uri: str, cluster_id: str, step_id: str) -> str:
        """Return the last lines of the step's stderr, waiting a while for EMR to upload it."""
        bucket, prefix = split_s3_uri(log_uri)
        base = "/".join(p for p in (prefix.strip("/"), cluster_id, "steps", step_id) if p)

        def read() -> str | None:
            for key, compressed in ((f"{base}/stderr.gz", True), (f"{base}/stderr", False)):
                try:
                    tail = read_object_tail(
                        self.s3,
                        bucket,
                        key,
                        compressed=compressed,
                        max_bytes=EMR_LOG_TAIL_BYTES,
                        max_lines=EMR_LOG_TAIL_LINES,
                    )
                except Exception as exc:  # a missing log must never mask the step's failure
                    log.warning(
                        "could not read the step log", uri=f"s3://{bucket}/{key}", error=str(exc)
                    )
                    tail = None
                if tail is not None:
                    return tail
            return None

        # EMR uploads step logs every few minutes and when the cluster shuts down.
        deadline = self._clock() + self.log_wait_seconds
        tail = self._poll_until(
            read, lambda found: found is not None, deadline, lambda _: self.poll_initial
        )
        if tail is None:
            log.warning("no stderr for EMR step", step_id=step_id, uri=f"s3://{bucket}/{base}")
            return ""
        return tail


def _step_finished(status: Mapping[str, Any]) -> bool:
    """Tell whether a step's Status is final: COMPLETED, FAILED, CANCELLED or INTERRUPTED."""
    state = status.get("State")
    return state == "COMPLETED" or state in EMR_STEP_FAILED_STATES


def _add_note(error: BaseException, note: str | None) -> None:
    """Attach note to error when there is one."""
    if note:
        error.add_note(note)


def _cluster_creation_time(cluster: Mapping[str, Any]) -> Any:
    """Sort key for clusters: creation time, then id."""
    created = cluster.get("Status", {}).get("Timeline", {}).get("CreationDateTime")
    return (created is None, created.timestamp() if created else 0.0, str(cluster.get("Id")))
