"""Tests for headwater.aws.emr, the transient EMR runner, against moto (in-process and server).

moto's EMR never moves a step on by itself (the first step stays RUNNING), so the tests play
EMR's part: the sleep injected into EmrRunner, called between two polls, changes the step's
state on moto's backend objects, the way EMR would while the orchestrator waits.
"""

from __future__ import annotations

import gzip
import json
import logging
import pickle
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.emr.models import Cluster, Step, emr_backends

from headwater import aws

REPO_ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
LOG_BUCKET = "headwater-emr"
ARTIFACTS = "s3://headwater-emr/artifacts/train-model/run-0001"
COST_CENTRE = {"cost-centre": "ml-platform"}
STEP_ARGS = [
    "spark-submit",
    "--deploy-mode",
    "cluster",
    "--py-files",
    f"{ARTIFACTS}/headwater.zip",
    f"{ARTIFACTS}/train.py",
    "--run-id",
    "run-0001",
]


# --- fixtures and helpers ----------------------------------------------------------------------


def make_spec(**overrides: Any) -> aws.EmrJobSpec:
    """The training job's spec, with overrides."""
    fields: dict[str, Any] = {
        "name": "headwater-train-model",
        "release_label": "emr-7.13.0",
        "log_uri": f"s3://{LOG_BUCKET}/logs/",
        "service_role": "headwater-emr-service",
        "job_flow_role": "headwater-emr-instance-profile",
        "master_instance_type": "m5.xlarge",
        "core_instance_type": "r5.2xlarge",
        "core_instance_count": 3,
        "core_spot": True,
        "idle_timeout_seconds": 1800,
        "step_name": "train-model",
        "step_args": STEP_ARGS,
        "bootstrap_actions": [
            ("install-requirements", f"{ARTIFACTS}/bootstrap.sh", [f"{ARTIFACTS}/reqs.txt"])
        ],
        "tags": COST_CENTRE,
        "spark_conf": {"spark.sql.shuffle.partitions": 64},
    }
    fields.update(overrides)
    return aws.EmrJobSpec(**fields)


@pytest.fixture
def mocked_aws(mocked_aws: None) -> None:
    """moto's in-process mock (see conftest), with the bucket EMR writes its logs to."""
    aws.client("s3").create_bucket(Bucket=LOG_BUCKET)


@pytest.fixture
def failure_details(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto report a step's FailureDetails, which real EMR sets on failed steps."""
    plain = Step.status.fget
    assert plain is not None

    def status(step: Step) -> dict[str, Any]:
        details = getattr(step, "failure_details", None)
        return {**plain(step), **({"FailureDetails": details} if details else {})}

    monkeypatch.setattr(Step, "status", property(status))


def new_run_id() -> str:
    return f"train-model-{uuid.uuid4().hex[:8]}"


def backend() -> Any:
    return emr_backends[DEFAULT_ACCOUNT_ID][REGION]


def clusters_of(run_id: str) -> list[Cluster]:
    """moto's clusters carrying the run's tag, in any state."""
    return [
        cluster
        for cluster in backend().clusters.values()
        if {t["Key"]: t["Value"] for t in cluster.tags}.get(aws.EMR_RUN_ID_TAG) == run_id
    ]


def the_cluster_of(run_id: str) -> Cluster:
    (cluster,) = clusters_of(run_id)
    return cluster


def set_step_state(run_id: str, state: str, failure: dict[str, str] | None = None) -> None:
    """Do what EMR does to the run's step (and, on success, to its transient cluster)."""
    cluster = the_cluster_of(run_id)
    step = cluster.steps[0]
    step.state = state
    if failure:
        step.failure_details = failure
    if state == "COMPLETED":
        # KeepJobFlowAliveWhenNoSteps=False: with its only step done, EMR shuts the cluster down.
        cluster.terminate()


def run_tag(emr: Any, cluster_id: str) -> str | None:
    """The run id a cluster is tagged with, read through the EMR API."""
    tags = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Tags"]
    return {t["Key"]: t["Value"] for t in tags}.get(aws.EMR_RUN_ID_TAG)


def cluster_state(cluster_id: str) -> str:
    return aws.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]


class FakeClock:
    """A monotonic clock that only moves when the fake sleep says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class StepDriver:
    """Stands in for time.sleep: records each wait, advances the clock, moves the step on.

    states[i] is the state EMR gives the step during the i-th wait; after the list runs out
    the step stays as it is. on_state(cluster, step, state) runs after each change.
    """

    def __init__(
        self,
        run_id: str,
        states: Sequence[str] = (),
        clock: FakeClock | None = None,
        failure: dict[str, str] | None = None,
        on_state: Callable[[Cluster, Step, str], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.states = list(states)
        self.clock = clock or FakeClock()
        self.failure = failure
        self.on_state = on_state
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.now += seconds
        if self.states:
            state = self.states.pop(0)
            set_step_state(self.run_id, state, self.failure)
            if self.on_state:
                cluster = the_cluster_of(self.run_id)
                self.on_state(cluster, cluster.steps[0], state)


def make_runner(driver: StepDriver, **kwargs: Any) -> aws.EmrRunner:
    kwargs.setdefault("rng", random.Random(7))
    return aws.EmrRunner(sleep=driver, clock=driver.clock, **kwargs)


def write_step_stderr(cluster: Cluster, step: Step, lines: list[str], name: str) -> None:
    """Upload the step's stderr where EMR puts it: <LogUri>/<cluster>/steps/<step>/<name>."""
    text = "".join(f"{line}\n" for line in lines).encode()
    body = gzip.compress(text) if name.endswith(".gz") else text
    key = f"logs/{cluster.id}/steps/{step.id}/{name}"
    aws.client("s3").put_object(Bucket=LOG_BUCKET, Key=key, Body=body)


def record_calls(emr: Any, operation: str) -> list[dict[str, Any]]:
    """Record the parameters of every call of operation on the client, as sent."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(json.loads(json.dumps(params)))

    emr.meta.events.register(f"provide-client-params.emr.{operation}", record)
    return calls


def fail_calls(emr: Any, operation: str, error: BaseException) -> None:
    """Make every call of operation on the client raise error before it is sent."""

    def fail(**_: Any) -> None:
        raise error

    emr.meta.events.register(f"before-call.emr.{operation}", fail)


# --- the request -------------------------------------------------------------------------------


def test_build_job_flow_request_is_the_exact_request() -> None:
    request = aws.build_job_flow_request(make_spec(subnet_id="subnet-0abc"), "run-0001")

    assert request == {
        "Name": "headwater-train-model",
        "ReleaseLabel": "emr-7.13.0",
        "Applications": [{"Name": "Spark"}],
        "LogUri": "s3://headwater-emr/logs/",
        "Instances": {
            "InstanceGroups": [
                {
                    "Name": "master",
                    "InstanceRole": "MASTER",
                    "Market": "ON_DEMAND",
                    "InstanceType": "m5.xlarge",
                    "InstanceCount": 1,
                },
                {
                    "Name": "core",
                    "InstanceRole": "CORE",
                    "Market": "SPOT",
                    "InstanceType": "r5.2xlarge",
                    "InstanceCount": 3,
                },
            ],
            "KeepJobFlowAliveWhenNoSteps": False,
            "TerminationProtected": False,
            "Ec2SubnetId": "subnet-0abc",
        },
        "Steps": [
            {
                "Name": "train-model",
                "ActionOnFailure": "TERMINATE_CLUSTER",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": STEP_ARGS},
            }
        ],
        "BootstrapActions": [
            {
                "Name": "install-requirements",
                "ScriptBootstrapAction": {
                    "Path": f"{ARTIFACTS}/bootstrap.sh",
                    "Args": [f"{ARTIFACTS}/reqs.txt"],
                },
            }
        ],
        "Configurations": [
            {
                "Classification": "spark-defaults",
                "Properties": {
                    "spark.sql.shuffle.partitions": "64",
                    "spark.sql.execution.arrow.pyspark.enabled": "true",
                },
            },
            {
                "Classification": "spark-env",
                "Properties": {},
                "Configurations": [
                    {
                        "Classification": "export",
                        "Properties": {"PYSPARK_PYTHON": "/usr/bin/python3"},
                    }
                ],
            },
        ],
        "AutoTerminationPolicy": {"IdleTimeout": 1800},
        "ServiceRole": "headwater-emr-service",
        "JobFlowRole": "headwater-emr-instance-profile",
        "VisibleToAllUsers": True,
        "Tags": [
            {"Key": "cost-centre", "Value": "ml-platform"},
            {"Key": "headwater:run-id", "Value": "run-0001"},
        ],
    }


def test_request_variants_on_demand_core_master_only_and_own_python() -> None:
    on_demand = aws.build_job_flow_request(make_spec(core_spot=False), "r")
    master_only = aws.build_job_flow_request(make_spec(core_instance_count=0), "r")
    venv = aws.build_job_flow_request(make_spec(python_executable="/opt/venv/bin/python"), "r")

    assert on_demand["Instances"]["InstanceGroups"][1]["Market"] == "ON_DEMAND"
    assert [g["InstanceRole"] for g in master_only["Instances"]["InstanceGroups"]] == ["MASTER"]
    assert "Ec2SubnetId" not in on_demand["Instances"]
    export = venv["Configurations"][1]["Configurations"][0]
    assert export["Properties"] == {"PYSPARK_PYTHON": "/opt/venv/bin/python"}


def test_the_run_id_tag_cannot_be_overridden_by_the_specs_tags() -> None:
    spec = make_spec(tags={aws.EMR_RUN_ID_TAG: "someone-else", **COST_CENTRE})

    tags = aws.build_job_flow_request(spec, "run-0001")["Tags"]

    assert {t["Key"]: t["Value"] for t in tags}[aws.EMR_RUN_ID_TAG] == "run-0001"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"spark_conf": {aws.EMR_ARROW_CONF: "false"}}, "pandas UDFs"),
        ({"idle_timeout_seconds": 30}, "idle_timeout_seconds"),
        ({"idle_timeout_seconds": 8 * 24 * 3600}, "idle_timeout_seconds"),
        ({"log_uri": "/var/log/emr"}, "not an S3 URI"),
        ({"bootstrap_actions": [("deps", "https://example.com/b.sh", [])]}, "not an S3 URI"),
        ({"step_args": []}, "step_args"),
        ({"core_instance_count": -1}, "core_instance_count"),
    ],
)
def test_spec_rejects_what_emr_or_the_job_cannot_run(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(**overrides)


def test_spec_keeps_arrow_on_when_spark_conf_omits_it() -> None:
    spec = make_spec(spark_conf={"spark.executor.memory": "8g", "spark.dynamicAllocation": True})

    assert spec.spark_conf == {
        "spark.executor.memory": "8g",
        "spark.dynamicAllocation": "true",
        aws.EMR_ARROW_CONF: "true",
    }


# --- running a step ----------------------------------------------------------------------------


def test_run_launches_the_cluster_as_requested_and_waits_for_the_step_to_complete(
    mocked_aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = new_run_id()
    spec = make_spec()
    emr = aws.client("emr")
    sent = record_calls(emr, "RunJobFlow")
    # EMR keeps the step RUNNING for five polls, then completes it.
    driver = StepDriver(run_id, ["RUNNING"] * 4 + ["COMPLETED"])

    with caplog.at_level(logging.INFO, logger="headwater.aws"):
        result = make_runner(driver).run(spec, run_id, timeout_seconds=3600)

    assert result.state == "COMPLETED"
    assert result.reused is False
    assert sent == [json.loads(json.dumps(aws.build_job_flow_request(spec, run_id)))]
    (request,) = sent
    assert request["Instances"]["KeepJobFlowAliveWhenNoSteps"] is False
    assert request["AutoTerminationPolicy"] == {"IdleTimeout": 1800}

    # What EMR (moto) recorded for the cluster and its step.
    cluster = emr.describe_cluster(ClusterId=result.cluster_id)["Cluster"]
    assert cluster["ReleaseLabel"] == "emr-7.13.0"
    assert [app["Name"] for app in cluster["Applications"]] == ["Spark"]
    assert cluster["LogUri"] == "s3://headwater-emr/logs/"
    assert cluster["ServiceRole"] == "headwater-emr-service"
    assert cluster["Ec2InstanceAttributes"]["IamInstanceProfile"] == (
        "headwater-emr-instance-profile"
    )
    assert cluster["AutoTerminate"] is True
    assert cluster["TerminationProtected"] is False
    assert cluster["VisibleToAllUsers"] is True
    assert {t["Key"]: t["Value"] for t in cluster["Tags"]} == {
        "cost-centre": "ml-platform",
        "headwater:run-id": run_id,
    }
    configurations = {c["Classification"]: c for c in cluster["Configurations"]}
    assert configurations["spark-defaults"]["Properties"][aws.EMR_ARROW_CONF] == "true"
    (export,) = configurations["spark-env"]["Configurations"]
    assert export == {
        "Classification": "export",
        "Properties": {"PYSPARK_PYTHON": "/usr/bin/python3"},
    }
    groups = emr.list_instance_groups(ClusterId=result.cluster_id)["InstanceGroups"]
    markets = {g["InstanceGroupType"]: (g["Market"], g["RequestedInstanceCount"]) for g in groups}
    assert markets == {"MASTER": ("ON_DEMAND", 1), "CORE": ("SPOT", 3)}
    (bootstrap,) = emr.list_bootstrap_actions(ClusterId=result.cluster_id)["BootstrapActions"]
    assert bootstrap["ScriptPath"] == f"{ARTIFACTS}/bootstrap.sh"
    (step,) = emr.list_steps(ClusterId=result.cluster_id)["Steps"]
    assert step["Id"] == result.step_id
    assert step["Name"] == "train-model"
    assert step["ActionOnFailure"] == "TERMINATE_CLUSTER"
    assert step["Config"]["Jar"] == "command-runner.jar"
    assert step["Config"]["Args"] == STEP_ARGS

    # Polls back off exponentially from 15s to the 120s cap; jitter only shortens a wait.
    ceilings = [15.0, 30.0, 60.0, 120.0, 120.0]
    assert len(driver.delays) == len(ceilings)
    for delay, ceiling in zip(driver.delays, ceilings, strict=True):
        assert 0.9 * ceiling <= delay <= ceiling
    assert driver.delays[:4] == sorted(driver.delays[:4])
    assert max(driver.delays) <= 120.0

    # Progress is logged on each change of the step's state, not on every poll.
    changes = [
        (r.msg["previous"], r.msg["state"])
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg["event"] == "EMR step state changed"
    ]
    assert changes == [("(start)", "RUNNING"), ("RUNNING", "COMPLETED")]


def test_a_waiting_cluster_is_not_success_only_the_steps_state_decides(mocked_aws: None) -> None:
    run_id = new_run_id()

    def cluster_idles(cluster: Cluster, step: Step, state: str) -> None:
        cluster.state = "WAITING"  # the cluster looks idle while its step is still pending

    driver = StepDriver(run_id, ["PENDING", "RUNNING", "COMPLETED"], on_state=cluster_idles)

    result = make_runner(driver).run(make_spec(), run_id, timeout_seconds=3600)

    assert result.state == "COMPLETED"
    assert len(driver.delays) == 3


@pytest.mark.parametrize(("log_name"), ["stderr.gz", "stderr"])
def test_failed_step_raises_with_the_tail_of_its_stderr_and_terminates_the_cluster(
    mocked_aws: None, failure_details: None, log_name: str
) -> None:
    run_id = new_run_id()
    lines = [f"line {i:03d}: stage {i} of the Spark job" for i in range(200)]

    def upload_stderr(cluster: Cluster, step: Step, state: str) -> None:
        if state == "FAILED":
            write_step_stderr(cluster, step, lines, log_name)

    failure = {"Reason": "Spark job failed", "Message": "ValueError: no training rows"}
    driver = StepDriver(run_id, ["FAILED"], failure=failure, on_state=upload_stderr)

    with pytest.raises(aws.EmrStepFailed) as raised:
        make_runner(driver).run(make_spec(), run_id, timeout_seconds=3600)

    error = raised.value
    cluster = the_cluster_of(run_id)
    assert (error.cluster_id, error.step_id, error.state) == (
        cluster.id,
        cluster.steps[0].id,
        "FAILED",
    )
    assert "Spark job failed" in error.reason
    assert "ValueError: no training rows" in str(error)
    assert error.log_tail.splitlines() == lines[-50:]
    assert "line 199" in str(error)
    assert "line 150" in str(error)
    assert "line 149" not in str(error)
    assert "line 000" not in str(error)
    # The test's EMR leaves a failed step's cluster up: the runner itself terminated it.
    assert cluster_state(cluster.id) == "TERMINATED"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.step_id, copy.log_tail) == (error.step_id, error.log_tail)


@pytest.mark.parametrize(("log_name"), ["stderr.gz", "stderr"])
def test_failed_step_tail_is_capped_in_bytes_and_starts_on_a_whole_line(
    mocked_aws: None, log_name: str
) -> None:
    run_id = new_run_id()
    lines = [f"{i:03d} " + "x" * 996 for i in range(200)]  # 1000 characters a line

    def upload_stderr(cluster: Cluster, step: Step, state: str) -> None:
        write_step_stderr(cluster, step, lines, log_name)

    driver = StepDriver(run_id, ["FAILED"], on_state=upload_stderr)

    with pytest.raises(aws.EmrStepFailed) as raised:
        make_runner(driver).run(make_spec(), run_id, timeout_seconds=3600)

    tail = raised.value.log_tail.splitlines()
    assert len(raised.value.log_tail.encode()) <= aws.EMR_LOG_TAIL_BYTES
    assert tail == lines[-len(tail) :]
    assert 5 <= len(tail) < 50


def test_failed_step_without_logs_waits_a_while_for_them_then_says_so(mocked_aws: None) -> None:
    run_id = new_run_id()
    driver = StepDriver(run_id, ["CANCELLED"])

    with pytest.raises(aws.EmrStepFailed) as raised:
        make_runner(driver, log_wait_seconds=60).run(make_spec(), run_id, timeout_seconds=3600)

    assert raised.value.state == "CANCELLED"
    assert raised.value.log_tail == ""
    assert "stderr was not found" in str(raised.value)
    # One poll, then waits of at most poll_initial for EMR to upload the logs, 60s in all.
    assert driver.delays[1:] == [15.0, 15.0, 15.0, 15.0]
    assert cluster_state(raised.value.cluster_id) == "TERMINATED"


def test_timeout_terminates_the_cluster(mocked_aws: None) -> None:
    run_id = new_run_id()
    driver = StepDriver(run_id)  # the step never leaves RUNNING

    with pytest.raises(aws.EmrTimeout) as raised:
        make_runner(driver, jitter=0.0).run(make_spec(), run_id, timeout_seconds=100)

    assert raised.value.state == "RUNNING"
    # 15 + 30 would leave 55s, so the last wait stops at the deadline instead of taking 60s.
    assert driver.delays == [15.0, 30.0, 55.0]
    assert cluster_state(raised.value.cluster_id) == "TERMINATED"
    assert pickle.loads(pickle.dumps(raised.value)).timeout_seconds == 100


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), SystemExit(143)])
def test_an_interrupted_wait_terminates_the_cluster_before_propagating(
    mocked_aws: None, interruption: BaseException
) -> None:
    run_id = new_run_id()

    def interrupted(seconds: float) -> None:
        raise interruption

    with pytest.raises(type(interruption)):
        aws.EmrRunner(sleep=interrupted).run(make_spec(), run_id, timeout_seconds=3600)

    assert cluster_state(the_cluster_of(run_id).id) == "TERMINATED"


def test_an_unexpected_error_while_polling_terminates_the_cluster(mocked_aws: None) -> None:
    run_id = new_run_id()
    emr = aws.client("emr")
    fail_calls(emr, "DescribeStep", RuntimeError("connection reset by a gremlin"))

    with pytest.raises(RuntimeError, match="gremlin"):
        make_runner(StepDriver(run_id)).run(make_spec(), run_id, timeout_seconds=3600)

    assert cluster_state(the_cluster_of(run_id).id) == "TERMINATED"


def test_a_failed_termination_is_reported_beside_the_original_error(mocked_aws: None) -> None:
    run_id = new_run_id()
    emr = aws.client("emr")
    fail_calls(emr, "DescribeStep", RuntimeError("connection reset by a gremlin"))
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "TerminateJobFlows"
    )
    fail_calls(emr, "TerminateJobFlows", denied)

    with pytest.raises(RuntimeError, match="gremlin") as raised:
        make_runner(StepDriver(run_id)).run(make_spec(), run_id, timeout_seconds=3600)

    cluster_id = the_cluster_of(run_id).id
    assert any(cluster_id in note and "AccessDenied" in note for note in raised.value.__notes__)


# --- idempotency: one cluster per run ----------------------------------------------------------


def test_run_adopts_the_live_cluster_of_its_run_instead_of_launching_another(
    mocked_aws: None,
) -> None:
    run_id = new_run_id()
    spec = make_spec()
    emr = aws.client("emr")
    # What a killed orchestrator leaves behind: the run's cluster, still working on its step.
    orphan = emr.run_job_flow(**aws.build_job_flow_request(spec, run_id))["JobFlowId"]
    # Neither another run's live cluster nor this run's finished one may be adopted.
    emr.run_job_flow(**aws.build_job_flow_request(spec, new_run_id()))
    finished = emr.run_job_flow(**aws.build_job_flow_request(spec, run_id))["JobFlowId"]
    emr.terminate_job_flows(JobFlowIds=[finished])
    launched = record_calls(emr, "RunJobFlow")
    driver = StepDriver(run_id, ["COMPLETED"])

    def complete_the_orphan(seconds: float) -> None:
        driver.delays.append(seconds)
        backend().clusters[orphan].steps[0].state = "COMPLETED"

    result = aws.EmrRunner(sleep=complete_the_orphan).run(spec, run_id, timeout_seconds=3600)

    (step,) = emr.list_steps(ClusterId=orphan)["Steps"]
    assert result == aws.EmrRunResult(orphan, step["Id"], "COMPLETED", reused=True)
    assert launched == []


def test_a_live_cluster_of_the_run_without_the_step_is_replaced(mocked_aws: None) -> None:
    run_id = new_run_id()
    emr = aws.client("emr")
    stray = emr.run_job_flow(**aws.build_job_flow_request(make_spec(step_name="old"), run_id))

    def complete_the_new_cluster(seconds: float) -> None:
        (new,) = [c for c in clusters_of(run_id) if c.id != stray["JobFlowId"]]
        new.steps[0].state = "COMPLETED"

    result = aws.EmrRunner(sleep=complete_the_new_cluster).run(make_spec(), run_id, 3600)

    assert result.reused is False
    assert result.cluster_id != stray["JobFlowId"]
    assert cluster_state(stray["JobFlowId"]) == "TERMINATED"


def test_a_launch_whose_answer_was_lost_adopts_the_cluster_it_created(mocked_aws: None) -> None:
    run_id = new_run_id()
    emr = aws.client("emr")

    def answer_lost(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://elasticmapreduce.us-east-1.amazonaws.com")

    # after-call: EMR has created the cluster, but the answer never reaches the runner.
    emr.meta.events.register("after-call.emr.RunJobFlow", answer_lost)
    driver = StepDriver(run_id, ["COMPLETED"])

    result = make_runner(driver).run(make_spec(), run_id, timeout_seconds=3600)

    assert result.cluster_id == the_cluster_of(run_id).id
    assert result.state == "COMPLETED"


KILLED_ORCHESTRATOR = """
import json, sys
from headwater import aws

spec = aws.EmrJobSpec(**json.loads(sys.argv[1]))
# Waits of an hour: the test kills this process while it waits.
aws.EmrRunner(poll_initial=3600, poll_max=3600).run(spec, sys.argv[2], timeout_seconds=7200)
"""


def test_a_retry_after_the_orchestrator_was_killed_reuses_its_cluster(
    moto_endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a kill skips run()'s cleanup, so the first attempt is a real process, SIGKILLed
    # once its cluster exists. The moto server runs in this process: the test sees its state.
    monkeypatch.setenv(aws.ENDPOINT_URL_ENV, moto_endpoint)
    run_id = new_run_id()
    spec_fields = {
        "name": "headwater-train-model",
        "release_label": "emr-7.13.0",
        "log_uri": f"s3://{LOG_BUCKET}/logs/",
        "service_role": "headwater-emr-service",
        "job_flow_role": "headwater-emr-instance-profile",
        "master_instance_type": "m5.xlarge",
        "core_instance_type": "r5.2xlarge",
        "core_instance_count": 2,
        "step_name": "train-model",
        "step_args": STEP_ARGS,
        "tags": COST_CENTRE,
    }
    first = subprocess.Popen(
        [sys.executable, "-c", KILLED_ORCHESTRATOR, json.dumps(spec_fields), run_id],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = time.monotonic()
        while not clusters_of(run_id):
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() - started < 60, "the first attempt launched no cluster"
            time.sleep(0.05)
    finally:
        first.kill()
        first.communicate(timeout=30)
    orphan = the_cluster_of(run_id).id
    assert cluster_state(orphan) in aws.EMR_ACTIVE_CLUSTER_STATES  # nothing cleaned it up

    driver = StepDriver(run_id, ["RUNNING", "COMPLETED"])
    result = make_runner(driver).run(aws.EmrJobSpec(**spec_fields), run_id, timeout_seconds=3600)

    assert result.reused is True
    assert result.cluster_id == orphan
    assert result.state == "COMPLETED"
    emr = aws.client("emr")
    ours = [c["Id"] for c in emr.list_clusters()["Clusters"] if run_tag(emr, c["Id"]) == run_id]
    assert ours == [orphan]


def test_a_log_uploaded_while_waiting_is_read(mocked_aws: None) -> None:
    # Given a step that fails, and EMR uploading its stderr only during the second wait for it
    run_id = new_run_id()
    driver = StepDriver(run_id, ["FAILED", "FAILED", "FAILED"])

    def upload_late(cluster: Cluster, step: Step, state: str) -> None:
        if len(driver.delays) == 3:
            write_step_stderr(cluster, step, ["Traceback", "ValueError: empty"], "stderr.gz")

    driver.on_state = upload_late

    # When the runner waits for the step and then for its log
    with pytest.raises(aws.EmrStepFailed) as raised:
        make_runner(driver).run(make_spec(), run_id, timeout_seconds=3600)

    # Then it looked again every poll_initial until the log was there, and no longer
    assert raised.value.log_tail == "Traceback\nValueError: empty"
    assert driver.delays[1:] == [15.0, 15.0]
