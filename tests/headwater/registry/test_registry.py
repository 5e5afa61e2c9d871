"""The model registry on local disk and on S3 (moto server): versions, promotion, the gate."""

from __future__ import annotations

import json
import multiprocessing
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from headwater.core.config import GateConfig
from headwater.core.layout import DECISION, LINEAGE, METRICS, POINTER
from headwater.core.records import DateRange, Lineage
from headwater.data.lake import Lake, open_lake
from headwater.model.comparison import Interval
from headwater.registry.gate import Decision, TrainingWindow, comparison_problems, decide
from headwater.registry.registry import (
    ConcurrentPromotionError,
    NothingToRollBackError,
    Registry,
    RegistryError,
    VersionNotFoundError,
    new_version,
    version_time,
)
from headwater.serving.store import ModelStore, ModelStoreError, is_valid_name

MODEL = "delay"
T0 = datetime(2026, 11, 24, 2, 15, tzinfo=UTC)


@pytest.fixture
def registry(lake: Lake) -> Registry:
    return Registry(lake, MODEL)


def train(
    registry: Registry, minutes: int, auc: float = 0.7, *, complete: bool = True, tag: str = "r"
) -> str:
    """Write what a training run leaves: metrics.json, then _SUCCESS."""
    version = new_version(T0 + timedelta(minutes=minutes), run_id=f"{tag}{minutes:05d}")
    registry.write_json(version, METRICS, {"holdout": {"auc_roc": auc, "rows": 1000}, "n": 1})
    if complete:
        registry.mark_complete(version)
    return version


# --- version names -----------------------------------------------------------------------------


def test_new_version_is_a_utc_timestamp_plus_the_run_id_tail() -> None:
    # Given a time in New York (UTC-5 in November) and a run id
    new_york = datetime(2026, 11, 23, 16, 15, tzinfo=timezone(timedelta(hours=-5)))

    # When a version is named
    version = new_version(new_york, run_id="20261124T021500Z-AB12CD")

    # Then it is the UTC time plus the run id's last six characters, and parses back
    assert version == "20261123T211500Z-ab12cd"
    assert version_time(version) == datetime(2026, 11, 23, 21, 15, tzinfo=UTC)


def test_new_version_without_run_id_gets_a_random_suffix() -> None:
    first, second = new_version(T0), new_version(T0)

    assert first.startswith("20261124T021500Z-") and len(first) == len("20261124T021500Z-") + 6
    assert first != second


# --- versions ----------------------------------------------------------------------------------


def test_versions_are_sorted_oldest_first_and_only_complete(registry: Registry) -> None:
    # Given versions written out of order, one of them unfinished
    late = train(registry, 30, 0.72)
    early = train(registry, 10, 0.70)
    train(registry, 20, 0.71, complete=False)

    # When the registry lists them
    versions = registry.versions()

    # Then only the complete ones appear, oldest first, with their holdout metrics
    assert [v.version for v in versions] == [early, late]
    assert versions[0].created_at == T0 + timedelta(minutes=10)
    assert versions[1].metrics == {"auc_roc": 0.72, "rows": 1000}
    assert {v.status for v in versions} == {"candidate"}


def test_versions_of_an_empty_registry(registry: Registry) -> None:
    assert registry.versions() == []
    assert registry.production() is None


def test_read_json_of_a_missing_file(registry: Registry) -> None:
    version = train(registry, 1)

    assert registry.read_json(version, "lineage.json", default=None) is None
    with pytest.raises(VersionNotFoundError, match="lineage.json does not exist"):
        registry.read_json(version, "lineage.json")


def test_metrics_and_lineage_read_as_typed_records(registry: Registry) -> None:
    # Given a version whose lineage is an old one (its range one string)
    version = train(registry, 1, auc=0.71)
    registry.write_json(
        version, LINEAGE, {**FULL_YEAR, "training_key": "k1", "inputs": {"clean/a/1": "sha256:x"}}
    )

    metrics, lineage = registry.read_metrics(version), registry.read_lineage(version)

    assert metrics.holdout == {"auc_roc": 0.71, "rows": 1000} and metrics.extra == {"n": 1}
    assert lineage is not None and lineage.training_key == "k1"
    assert lineage.range == DateRange(date(2013, 1, 1), date(2013, 12, 31))
    assert registry.version_with_key("k1") == version and registry.version_with_key("k2") is None


def test_missing_metrics_and_lineage(registry: Registry) -> None:
    version = new_version(T0, run_id="bare")
    registry.mark_complete(version)

    assert registry.read_lineage(version) is None
    assert registry.read_metrics(version, default=None) is None
    with pytest.raises(VersionNotFoundError, match="metrics.json does not exist"):
        registry.read_metrics(version)
    assert registry.info(version).metrics == {}  # listed, without metrics


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        (METRICS, {"holdout": {"auc_roc": "0.7"}}, "holdout.auc_roc is '0.7', not a number"),
        (LINEAGE, {"date_range": "2013-01-01"}, "date_range is '2013-01-01', not 'start..end'"),
    ],
)
def test_a_malformed_document_is_refused_naming_its_file_and_field(
    registry: Registry, name: str, body: dict[str, Any], field: str
) -> None:
    version = train(registry, 1)
    registry.write_json(version, name, body)
    where = registry.lake.uri_of("models", MODEL, version, name)

    with pytest.raises(RegistryError) as raised:
        registry.read_metrics(version) if name == METRICS else registry.read_lineage(version)

    assert str(raised.value) == f"{where}: {field}"


@pytest.mark.parametrize("bad", ["../other", "a/b", ".hidden", POINTER, ""])
def test_names_that_would_leave_the_model_folder_are_refused(registry: Registry, bad: str) -> None:
    with pytest.raises(VersionNotFoundError, match="not a valid version name"):
        registry.promote(bad, "why")


@pytest.mark.parametrize(
    "name", ["meters", "m-1.v_2", "../other", "a/b", ".hidden", "", "x y", 7, None]
)
def test_the_registry_and_the_store_accept_the_same_model_names(name: Any, tmp_path: Path) -> None:
    # One rule for both (the API reads what the registry writes); a refusal is each one's error
    def store_accepts() -> bool:
        try:
            ModelStore(f"file://{tmp_path}", name)
        except ModelStoreError:
            return False
        return True

    def registry_accepts() -> bool:
        try:
            Registry(open_lake(f"file://{tmp_path}"), name)
        except RegistryError:
            return False
        return True

    assert registry_accepts() == store_accepts() == is_valid_name(name)


# --- promote, reject, rollback -----------------------------------------------------------------


def test_promote_reject_rollback_lifecycle(registry: Registry) -> None:
    a, b, c, d = (train(registry, m) for m in (1, 2, 3, 4))

    # When a is promoted, then b, then c is rejected
    first = registry.promote(a, "first model", expected=None)
    second = registry.promote(b, "better", expected=a)
    registry.reject(c, "worse than production")

    # Then the pointer names b with a before it, and statuses follow
    assert first.history == () and second.history == (a,)
    assert registry.production() == second
    statuses = {v.version: v.status for v in registry.versions()}
    assert statuses == {a: "retired", b: "production", c: "rejected", d: "candidate"}
    assert registry.read_json(b, DECISION)["decision"] == "promoted"
    assert registry.read_json(b, DECISION)["replaced"] == a
    assert registry.read_json(c, DECISION)["reason"] == "worse than production"

    # When production is rolled back
    back = registry.rollback("b breaks the API")

    # Then a is back with an empty history and b is retired, with the reason recorded
    assert (back.version, back.history, back.reason) == (a, (), "b breaks the API")
    assert registry.production() == back
    statuses = {v.version: v.status for v in registry.versions()}
    assert statuses == {a: "production", b: "retired", c: "rejected", d: "candidate"}
    decision = registry.read_json(b, DECISION)
    assert (decision["decision"], decision["replaced_by"]) == ("retired", a)
    assert [p["decision"] for p in decision["previous"]] == ["promoted"]

    # And there is nothing older to go back to
    with pytest.raises(NothingToRollBackError, match="no earlier production version"):
        registry.rollback()


def test_promote_pushes_history_newest_first_without_duplicates(registry: Registry) -> None:
    a, b, c = (train(registry, m) for m in (1, 2, 3))
    for version in (a, b, c):
        registry.promote(version, "next")

    # When an older version comes back
    pointer = registry.promote(a, "a again")

    # Then it leaves the history, where the others stay newest first
    assert (pointer.version, pointer.history) == (a, (c, b))


def test_promoting_the_production_version_again_changes_nothing(registry: Registry) -> None:
    a = train(registry, 1)
    first = registry.promote(a, "first")

    assert registry.promote(a, "again") == first
    assert registry.production() == first


def test_the_pointer_records_the_checksums_of_what_serving_reads(registry: Registry) -> None:
    import hashlib

    from headwater.core.layout import EXPORT, LOOKUPS, PROFILE, SERVING_FILES

    # Given two versions with their serving files
    v1, v2 = train(registry, 1), train(registry, 2)
    for version in (v1, v2):
        registry.write_json(version, EXPORT, {"version": version})
        registry.write_json(version, LOOKUPS, {"of": version})
        registry.write_json(version, PROFILE, {"profile": version})

    def sums(version: str) -> dict[str, str]:
        return {
            name: hashlib.sha256(
                registry.lake.read_bytes("models", MODEL, version, name)
            ).hexdigest()
            for name in SERVING_FILES
        }

    # When both are promoted, then production rolled back
    registry.promote(v1, "first")
    pointer = registry.promote(v2, "better")

    # Then the pointer holds the checksums of each version it names, taken when promoted
    assert set(SERVING_FILES) == {EXPORT, LOOKUPS, PROFILE}
    assert pointer.checksums == {v2: sums(v2), v1: sums(v1)}
    # And a rollback keeps those of the version it returns to (not recomputed from the files)
    registry.write_json(v1, EXPORT, {"changed": "after promotion"})
    assert registry.rollback("bad").checksums == {v1: pointer.checksums[v1]}
    assert registry.production().checksums == {v1: pointer.checksums[v1]}  # as stored


def test_a_pointer_written_before_checksums_covers_a_version_once_back_in_production(
    registry: Registry,
) -> None:
    import hashlib

    from headwater.core.layout import EXPORT, LOOKUPS

    # Given a pointer written before pointers recorded checksums (a, with b before it)
    a, b, c = (train(registry, m) for m in (1, 2, 3))
    for version in (a, b, c):
        registry.write_json(version, EXPORT, {"version": version})
        registry.write_json(version, LOOKUPS, {"of": version})
    legacy = {"version": a, "promoted_at": "2026-01-01", "reason": "old", "history": [b]}
    registry.lake.write_bytes(json.dumps(legacy).encode(), "models", MODEL, POINTER)

    # When a new version is promoted, only it is covered: a and b stay unverified
    assert set(registry.promote(c, "newer").checksums) == {c}

    # And a rollback to a takes its checksums from its files as they are then
    registry.write_json(a, EXPORT, {"changed": "before the rollback"})
    back = registry.rollback("c is bad")
    now = hashlib.sha256(registry.lake.read_bytes("models", MODEL, a, EXPORT)).hexdigest()
    assert back.checksums[a][EXPORT] == now
    assert set(back.checksums) == {a}  # b, still in the history, carries none
    assert back.history == (b,)


def test_a_serving_file_absent_at_promotion_is_recorded_absent(registry: Registry) -> None:
    from headwater.core.layout import EXPORT, LOOKUPS
    from headwater.serving.store import ABSENT

    # Given a version whose lookups were never written
    version = train(registry, 1)
    registry.write_json(version, EXPORT, {"version": version})

    # When it is promoted (bypassing the CLI's check that serving can load it)
    pointer = registry.promote(version, "first")

    # Then the pointer records the file as absent, not nothing (a file written later must not
    # pass unverified)
    assert pointer.checksums[version][LOOKUPS] == ABSENT == "absent"
    assert len(pointer.checksums[version][EXPORT]) == 64


def test_promote_refuses_an_incomplete_or_unknown_version(registry: Registry) -> None:
    unfinished = train(registry, 1, complete=False)

    with pytest.raises(VersionNotFoundError, match=f"{unfinished} .*incomplete"):
        registry.promote(unfinished, "too early")
    with pytest.raises(VersionNotFoundError, match="has no version 20990101T000000Z-nope"):
        registry.promote("20990101T000000Z-nope", "typo")
    assert registry.production() is None


def test_reject_refuses_the_production_version(registry: Registry) -> None:
    a = train(registry, 1)
    registry.promote(a, "first")

    with pytest.raises(RegistryError, match="is in production"):
        registry.reject(a, "changed my mind")


def test_rollback_without_production_fails(registry: Registry) -> None:
    with pytest.raises(NothingToRollBackError, match="has no production version"):
        registry.rollback()


def test_rollback_skips_versions_rejected_since(registry: Registry) -> None:
    a, b, c = (train(registry, m) for m in (1, 2, 3))
    for version in (a, b, c):
        registry.promote(version, "next")
    registry.reject(b, "found a leak in its features")

    pointer = registry.rollback()

    assert (pointer.version, pointer.history) == (a, ())


def test_promote_with_a_stale_expectation_is_refused(registry: Registry) -> None:
    a, b, c = (train(registry, m) for m in (1, 2, 3))
    registry.promote(a, "first")

    # Given a caller that decided while a was in production, but b got promoted meanwhile
    registry.promote(b, "someone else", expected=a)

    # Then its promotion is refused and production stays b
    with pytest.raises(ConcurrentPromotionError, match=f"production is {b}, not {a}"):
        registry.promote(c, "based on a", expected=a)
    assert registry.production().version == b
    assert registry.read_json(c, DECISION, default=None) is None


def test_two_first_promotions_one_wins(registry: Registry) -> None:
    # Given two promoters that both read "no production" (S3: interleaved by hand)
    a, b = train(registry, 1), train(registry, 2)
    assert registry.production() is None

    # When both promote on that basis
    registry.promote(a, "promoter 1", expected=None)

    # Then the second loses instead of silently overriding the first
    with pytest.raises(ConcurrentPromotionError):
        registry.promote(b, "promoter 2", expected=None)
    assert registry.production().version == a


def test_lake_compare_and_swap(lake: Lake) -> None:
    # Create only when absent
    assert lake.compare_and_swap("cas", "obj", expected=None, new=b"one")
    assert not lake.compare_and_swap("cas", "obj", expected=None, new=b"two")
    # Replace only when it holds what the caller expects
    assert not lake.compare_and_swap("cas", "obj", expected=b"stale", new=b"two")
    assert lake.compare_and_swap("cas", "obj", expected=b"one", new=b"two")
    assert lake.read_bytes("cas", "obj") == b"two"
    # An expectation about an object that does not exist fails
    assert not lake.compare_and_swap("cas", "missing", expected=b"one", new=b"x")
    assert not lake.exists("cas", "missing")


def test_s3_conditional_put_is_enforced_by_the_server(s3_lake_uri: str, moto_endpoint: str) -> None:
    """The S3 path relies on If-Match/If-None-Match being checked server-side: moto does."""
    from botocore.exceptions import ClientError

    from headwater import aws

    bucket = s3_lake_uri.removeprefix("s3://").split("/")[0]
    s3 = aws.client("s3", "us-east-1", moto_endpoint)
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"one", IfNoneMatch="*")["ETag"]
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch="*")
    s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=etag)
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key="k", Body=b"three", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"


def test_s3_swap_retried_after_it_landed_reports_success(
    s3_lake_uri: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PUT retried by botocore after a lost answer fails its condition; it still succeeded."""
    from headwater import aws

    bucket = s3_lake_uri.removeprefix("s3://").split("/")[0]
    s3 = aws.client("s3", "us-east-1", moto_endpoint)
    put = s3.put_object

    def put_twice(**kwargs: Any) -> Any:
        put(**kwargs)  # the first attempt lands, its answer is lost...
        return put(**kwargs)  # ...and the retry fails its condition

    monkeypatch.setattr(s3, "put_object", put_twice)
    assert aws.s3_compare_and_swap(bucket, "k", None, b"mine", s3=s3)
    assert not aws.s3_compare_and_swap(bucket, "k", b"other", b"x", s3=s3)


# --- races on a local lake ---------------------------------------------------------------------


def test_threads_racing_first_promotion_exactly_one_wins(tmp_path: Path) -> None:
    lake = open_lake(f"file://{tmp_path}/lake")
    registry = Registry(lake, MODEL)
    candidates = [train(registry, m, tag=f"t{m}") for m in range(8)]
    barrier = threading.Barrier(len(candidates))
    outcomes: dict[str, str] = {}

    def promoter(version: str) -> None:
        seen = registry.production()  # every promoter sees "no production"...
        barrier.wait()  # ...before any of them promotes
        try:
            registry.promote(version, "race", expected=seen.version if seen else None)
            outcomes[version] = "won"
        except ConcurrentPromotionError:
            outcomes[version] = "lost"

    threads = [threading.Thread(target=promoter, args=(v,)) for v in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [v for v, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == len(candidates) and len(winners) == 1
    assert registry.production().version == winners[0]
    assert registry.production().history == ()


def _hammer(root: str, versions: list[str], queue: Any) -> None:
    """Promote each version in turn, re-deciding whenever another process got in first."""
    registry = Registry(open_lake(root), MODEL)
    lost = 0
    for version in versions:
        while True:
            seen = registry.production()
            try:
                registry.promote(version, "hammer", expected=seen.version if seen else None)
                break
            except ConcurrentPromotionError:
                lost += 1
    queue.put(lost)


def test_processes_hammering_promote_lose_no_version(tmp_path: Path) -> None:
    # Given two processes, each with its own versions to promote one after another
    root = f"file://{tmp_path}/lake"
    registry = Registry(open_lake(root), MODEL)
    per_process = 25
    mine = {tag: [train(registry, m, tag=tag) for m in range(per_process)] for tag in ("p", "q")}
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [
        context.Process(target=_hammer, args=(root, versions, queue)) for versions in mine.values()
    ]

    # When they all run at once
    for worker in workers:
        worker.start()
    lost = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    # Then every promotion is in the pointer or its history exactly once, each process's in order
    pointer = registry.production()
    lineage = [pointer.version, *pointer.history]
    everything = [v for versions in mine.values() for v in versions]
    assert sorted(lineage) == sorted(everything)
    for versions in mine.values():
        assert [v for v in reversed(lineage) if v in versions] == versions
    assert json.loads(open_lake(root).read_bytes("models", MODEL, POINTER))["version"] == (
        pointer.version
    )
    print(f"promotions re-decided after losing a race: {lost}")


# --- the gate ----------------------------------------------------------------------------------


def tight(metric: str, difference: float) -> Interval:
    """An interval of +-0.0001 around ``difference`` (candidate - production)."""
    return Interval(metric, difference, difference - 1e-4, difference + 1e-4, 0.95, blocks=40)


@pytest.mark.parametrize(
    ("candidate", "production", "options", "promote", "reason"),
    [
        pytest.param(
            {"auc_roc": 0.7412},
            {"auc_roc": 0.7301},
            {"margin": 0.005},
            True,
            "candidate AUC 0.7412 vs production 0.7301: gain +0.0111, 95% interval "
            "[+0.0110, +0.0112] (paired block bootstrap over 40 blocks); its lower bound "
            "clears margin 0.005",
            id="better-than-margin",
        ),
        pytest.param(
            {"auc_roc": 0.7320},
            {"auc_roc": 0.7301},
            {"margin": 0.005},
            False,
            "its lower bound does not clear margin 0.005",
            id="better-within-margin",
        ),
        pytest.param(
            {"auc_roc": 0.7301},
            {"auc_roc": 0.7301},
            {"margin": 0.0},
            False,
            "gain +0.0000",
            id="tie-with-zero-margin",
        ),
        pytest.param(
            {"auc_roc": 0.7304},
            {"auc_roc": 0.7301},
            {"margin": 0.0},
            True,
            "clears margin 0",
            id="a-sure-gain-with-zero-margin",
        ),
        pytest.param(
            {"auc_roc": 0.70},
            {"auc_roc": 0.73},
            {},
            False,
            "gain -0.0300, 95% interval",
            id="worse",
        ),
        pytest.param(
            {"auc_roc": 0.61},
            None,
            {"margin": 0.5},
            True,
            "no production model yet: candidate AUC 0.6100 goes first",
            id="no-production",
        ),
        pytest.param(
            {"log_loss": 0.40},
            {"log_loss": 0.45},
            {"metric": "log_loss", "margin": 0.01},
            True,
            "candidate log loss 0.4000 vs production 0.4500: gain +0.0500, 95% interval "
            "[+0.0499, +0.0501] (paired block bootstrap over 40 blocks); its lower bound "
            "clears margin 0.01 (lower is better)",
            id="lower-is-better",
        ),
        pytest.param(
            {"log_loss": 0.50},
            {"log_loss": 0.45},
            {"metric": "log_loss"},
            False,
            "does not clear margin 0.002 (lower is better)",
            id="lower-is-better-worse",
        ),
        pytest.param(
            {"rmse": 3, "auc_roc": 0.5},
            {"rmse": 4},
            {"metric": "rmse"},
            True,
            "candidate RMSE 3.0000 vs production 4.0000: gain +1.0000",
            id="other-metric-integers",
        ),
    ],
)
def test_decide(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    options: dict[str, Any],
    promote: bool,
    reason: str,
) -> None:
    gate = GateConfig(**options)
    interval = None
    if production is not None:
        interval = tight(gate.metric, candidate[gate.metric] - production[gate.metric])

    decision = decide(candidate, production, gate, interval=interval)

    assert isinstance(decision, Decision)
    assert decision.promote is promote
    assert reason in decision.reason


def test_a_point_gain_alone_never_promotes_over_production() -> None:
    # Given a large point gain and no interval on it (nor a refusal saying why)
    # When / then the gate refuses to decide rather than promote on the point gain
    with pytest.raises(ValueError, match="never promotes on a point gain alone"):
        decide({"auc_roc": 0.9}, {"auc_roc": 0.5}, GateConfig(margin=0.0))


def test_the_default_margin_is_the_one_every_stage_sets() -> None:
    decision = decide({"auc_roc": 0.7320}, {"auc_roc": 0.7301}, interval=tight("auc_roc", 0.0019))

    assert decision.comparison["margin"] == GateConfig().margin == 0.002
    assert not decision.promote  # +0.0018 at worst does not clear 0.002


@pytest.mark.parametrize(
    ("candidate", "production", "message"),
    [
        ({"log_loss": 0.4}, {"auc_roc": 0.7}, r"candidate metrics have no 'auc_roc' \(available"),
        ({"auc_roc": 0.7}, {"log_loss": 0.4}, "production metrics have no 'auc_roc'"),
        ({}, None, r"candidate metrics have no 'auc_roc' \(available: none\)"),
        ({"auc_roc": float("nan")}, {"auc_roc": 0.7}, "candidate auc_roc is nan"),
        ({"auc_roc": "0.7"}, {"auc_roc": 0.7}, "not a finite number"),
        ({"auc_roc": True}, {"auc_roc": 0.7}, "not a finite number"),
    ],
)
def test_decide_refuses_missing_or_bad_metrics(
    candidate: dict[str, Any], production: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        decide(candidate, production)


# -- an honest gate: same holdout, large enough, unseen by production, sure of its gain -----------

# The observed case: the full-year model in production, a one-month candidate held out on five
# days of March that production trained on; candidate AUC 0.6529 vs 0.6506, margin 0.002.
FULL_YEAR = {"date_range": "2013-01-01..2013-12-31", "holdout_from": "2013-11-01"}
ONE_MONTH = {"date_range": "2013-03-01..2013-03-31", "holdout_from": "2013-03-27"}
NEXT_YEAR = {"date_range": "2013-01-01..2014-12-31", "holdout_from": "2014-11-01"}


def windows(candidate: dict[str, str], production: dict[str, str]) -> tuple[Any, Any]:
    return TrainingWindow.of(candidate), TrainingWindow.of(production)


def test_a_training_window_reads_the_range_in_either_form() -> None:
    old = TrainingWindow.of(FULL_YEAR)
    new = TrainingWindow.of(
        {"range": {"start": "2013-01-01", "end": "2013-12-31"}, "holdout_from": "2013-11-01"}
    )
    record = TrainingWindow.of(Lineage.from_dict(FULL_YEAR))

    assert (
        old
        == new
        == record
        == TrainingWindow(date(2013, 1, 1), date(2013, 12, 31), date(2013, 11, 1))
    )
    assert (
        TrainingWindow.of({"range": {"start": "2013-01-01"}, "holdout_from": "2013-11-01"}) is None
    )
    assert TrainingWindow.of({"date_range": "2013-01-01..2013-12-31"}) is None  # no holdout date


def test_a_holdout_production_trained_on_is_refused_naming_both_windows() -> None:
    candidate, production = windows(ONE_MONTH, FULL_YEAR)

    problems = comparison_problems(
        candidate, production, GateConfig(), production_version="v1", holdout_rows=30_000,
        holdout_days=5,
    )  # fmt: skip

    assert any(
        "holdout 2013-03-27..2013-03-31 overlaps the training window 2013-01-01..2013-10-31 "
        "of production v1" in p
        for p in problems
    ), problems


@pytest.mark.parametrize(
    ("rows", "days", "message"),
    [
        (30_000, 5, "the holdout has 5 days, fewer than the 28 required (gate.min_holdout_days)"),
        (
            400,
            60,
            "the holdout has 400 rows (6.7 a day over 60 days), fewer than the 1000 required "
            "(gate.min_holdout_rows: set it to fit the use case's grain)",
        ),
        # A daily question holds out one row a day: a year is fewer rows than the default.
        (
            365,
            365,
            "the holdout has 365 rows (1.0 a day over 365 days), fewer than the 1000 required "
            "(gate.min_holdout_rows: set it to fit the use case's grain)",
        ),
    ],
    ids=["days", "rows", "daily-grain"],
)
def test_a_holdout_too_small_to_compare_on_is_refused(rows: int, days: int, message: str) -> None:
    candidate, production = windows(NEXT_YEAR, FULL_YEAR)

    problems = comparison_problems(
        candidate, production, GateConfig(), production_version="v1", holdout_rows=rows,
        holdout_days=days,
    )  # fmt: skip

    assert problems == [message]


def test_a_much_shorter_training_window_needs_an_explicit_override() -> None:
    # Given a candidate trained on 2 months after production's 10 (holdouts apart)
    short = {"date_range": "2014-01-01..2014-03-31", "holdout_from": "2014-03-01"}
    candidate, production = windows(short, FULL_YEAR)
    common = {"production_version": "v1", "holdout_rows": 5000, "holdout_days": 31}

    gate = GateConfig()

    refused = comparison_problems(candidate, production, gate, **common)
    allowed = comparison_problems(candidate, production, gate, allow_shorter_window=True, **common)
    lenient = comparison_problems(candidate, production, GateConfig(min_window_ratio=0.1), **common)
    configured = comparison_problems(
        candidate, production, GateConfig(allow_shorter_window=True), **common
    )

    assert refused == [
        "the candidate trained on 59 days, less than 0.5 x the 304 days of production v1 "
        "(gate.min_window_ratio; override with gate.allow_shorter_window or "
        "--allow-shorter-window)"
    ]
    assert allowed == lenient == configured == []


def test_windows_come_from_lineage_and_unknown_ones_say_so() -> None:
    window = TrainingWindow.of(FULL_YEAR)
    assert (str(window.start), str(window.end), str(window.holdout_from)) == (
        "2013-01-01",
        "2013-12-31",
        "2013-11-01",
    )
    assert window.train_days == 304
    assert TrainingWindow.of(None) is None
    assert TrainingWindow.of({"date_range": "garbage"}) is None


def test_refusals_reject_whatever_the_numbers() -> None:
    decision = decide(
        {"auc_roc": 0.99},
        {"auc_roc": 0.5},
        refusals=["the holdout has 5 days, fewer than the 7 required"],
    )

    assert not decision.promote
    assert decision.reason == (
        "cannot compare candidate with production fairly: the holdout has 5 days, fewer than "
        "the 7 required"
    )


def test_the_observed_noisy_gain_is_not_promoted_and_the_reason_quotes_the_interval() -> None:
    # Given the observed numbers, and an interval on the gain that reaches below the margin
    interval = Interval("auc_roc", 0.0023, -0.0051, 0.0097, 0.95, blocks=5)

    decision = decide({"auc_roc": 0.6529}, {"auc_roc": 0.6506}, interval=interval)

    assert not decision.promote
    assert decision.reason == (
        "candidate AUC 0.6529 vs production 0.6506: gain +0.0023, 95% interval "
        "[-0.0051, +0.0097] (paired block bootstrap over 5 blocks); its lower bound does not "
        "clear margin 0.002"
    )


@pytest.mark.parametrize(
    ("interval", "options", "promote"),
    [
        (Interval("auc_roc", 0.02, 0.0101, 0.03, 0.95, blocks=40), {"margin": 0.01}, True),
        (Interval("auc_roc", 0.02, 0.0100, 0.03, 0.95, blocks=40), {"margin": 0.01}, False),
        # log loss: candidate - production is negative when the candidate is better
        (
            Interval("log_loss", -0.05, -0.07, -0.02, 0.9, blocks=40),
            {"metric": "log_loss", "margin": 0.01},
            True,
        ),
        (
            Interval("log_loss", -0.05, -0.07, 0.001, 0.9, blocks=40),
            {"metric": "log_loss"},
            False,
        ),
    ],
    ids=["lower-bound-clears", "lower-bound-equals-margin", "loss-clears", "loss-noisy"],
)
def test_the_lower_bound_of_the_gain_must_clear_the_margin(
    interval: Interval, options: dict[str, Any], promote: bool
) -> None:
    metric = options.get("metric", "auc_roc")
    candidate = {metric: 0.5 + interval.difference}

    decision = decide(candidate, {metric: 0.5}, GateConfig(**options), interval=interval)

    assert decision.promote is promote, decision.reason
    assert f"{int(interval.confidence * 100)}% interval" in decision.reason
    assert decision.comparison["lower_gain"] == pytest.approx(
        interval.lower if metric == "auc_roc" else -interval.upper
    )


def test_an_exploratory_verdict_leaves_production_alone_and_the_version_a_candidate(
    registry: Registry,
) -> None:
    first, second = train(registry, 0), train(registry, 1)
    registry.promote(first, "seeded")

    registry.hold(second, "exploratory run: the gate would have promoted it", {"lower": 0.1})

    assert registry.production().version == first
    assert registry.info(second).status == "candidate"
    decision = registry.read_json(second, DECISION)
    assert decision["decision"] == "held"
    assert decision["comparison"] == {"lower": 0.1}


def test_promote_and_reject_record_the_comparison(registry: Registry) -> None:
    first, second = train(registry, 0), train(registry, 1)

    registry.promote(first, "first", comparison={"difference": 0.1})
    registry.reject(second, "noisy", comparison={"lower": -0.1})

    assert registry.read_json(first, DECISION)["comparison"] == {"difference": 0.1}
    assert registry.read_json(second, DECISION)["comparison"] == {"lower": -0.1}


def test_a_refused_comparison_still_quotes_the_interval() -> None:
    from headwater.model.comparison import comparison_text

    interval = Interval("auc_roc", 0.0023, -0.0093, 0.0222, 0.95, blocks=6)

    decision = decide(
        {"auc_roc": 0.6529},
        {"auc_roc": 0.6506},
        interval=interval,
        refusals=["6 holdout days < 7"],
    )

    assert not decision.promote
    assert decision.comparison["refusals"] == ["6 holdout days < 7"]
    assert comparison_text(decision.comparison) == (
        "AUC gain +0.0023, 95% interval [-0.0093, +0.0222] over 6 blocks (margin 0.002)"
    )


# --- lost races: both pointers retry from what they read again, a bounded number of times -----


def _pointer_change(registry: Registry, operation: str) -> tuple[Any, Any, type[Exception]]:
    """(the change, what reads its pointer, the error of a race lost too often)."""
    from headwater.registry.registry import ConcurrentShadowError

    a, b = train(registry, 1), train(registry, 2)
    registry.promote(a, "first")
    production, shadow = registry.production, registry.shadow
    if operation == "promote":
        return lambda: registry.promote(b, "second"), production, ConcurrentPromotionError
    if operation == "rollback":
        registry.promote(b, "second")
        return lambda: registry.rollback("bad"), production, ConcurrentPromotionError
    if operation == "set_shadow":
        return lambda: registry.set_shadow(b), shadow, ConcurrentShadowError
    registry.set_shadow(b)
    return lambda: registry.clear_shadow(), shadow, ConcurrentShadowError


@pytest.mark.parametrize("operation", ["promote", "rollback", "set_shadow", "clear_shadow"])
@pytest.mark.parametrize("lost", [1, 20])
def test_a_pointer_swap_that_loses_a_race_reads_again_and_gives_up_after_20(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, operation: str, lost: int
) -> None:
    # Given a change of a pointer, and a lake where another writer wins the first `lost` swaps
    change, read, error = _pointer_change(registry, operation)
    before = read()
    swaps: list[bytes | None] = []
    real = Lake.compare_and_swap

    def racing(lake: Lake, *parts: str, expected: bytes | None, new: bytes) -> bool:
        swaps.append(expected)
        return len(swaps) > lost and real(lake, *parts, expected=expected, new=new)

    monkeypatch.setattr(Lake, "compare_and_swap", racing)  # a frozen dataclass: its class

    # When the change is made
    if lost < 20:
        change()
        # Then it read the pointer again after each lost swap and then swapped
        assert len(swaps) == lost + 1 and read() != before
        return
    with pytest.raises(error, match=r"pointer kept changing \(20 attempts\)"):
        change()
    # Then after 20 lost swaps it gave up, saying so, and the pointer is as it was
    assert len(swaps) == 20 and read() == before
