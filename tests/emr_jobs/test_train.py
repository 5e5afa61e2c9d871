"""The thin Spark entrypoint: its command line, the options it hands the generic job, main."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

import emr_jobs.train as entrypoint
from headwater.model.options import TrainOptions
from tests.conftest import MINIMAL_USECASE_MODULE

OPTIONS = TrainOptions(
    usecase="meters",
    usecase_module="my.module",
    lake="file:///l",
    version="v1",
    start=date(2011, 1, 1),
    end=date(2012, 12, 31),
    holdout_from=date(2012, 9, 1),
    production_version="v0",
    run_id="r",
    code_version="abc",
    config={"stage": "x", "gate": {"confidence": 0.9}},
    reg_param=0.01,
    shuffle_partitions=3,
    region="eu-west-1",
    endpoint_url="http://127.0.0.1:1",
)


def test_the_options_cross_the_command_line_whole() -> None:
    args = entrypoint.parse_args(["--options-json", OPTIONS.to_json(), "--master", "local[1]"])

    assert args.options == OPTIONS
    assert args.master == "local[1]"


def test_the_options_json_keeps_dates_as_iso_strings_and_refuses_an_unknown_field() -> None:
    body = json.loads(OPTIONS.to_json())

    assert (body["start"], body["holdout_from"]) == ("2011-01-01", "2012-09-01")
    with pytest.raises(TypeError, match="colour"):
        TrainOptions.from_dict({**body, "colour": "red"})


def test_the_options_are_required() -> None:
    with pytest.raises(SystemExit):
        entrypoint.parse_args(["--master", "local[1]"])


def options_json(usecase: str, version: str, module: str | None = None) -> str:
    return TrainOptions(
        usecase=usecase, usecase_module=module, lake="file:///l", version=version,
        start=date(2013, 1, 1), end=date(2013, 2, 1),
    ).to_json()  # fmt: skip


def test_main_trains_the_named_use_case_and_prints_one_summary_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], meters_module: Any
) -> None:
    # Given a session and a job that record what they are given
    seen: dict[str, Any] = {}

    class Session:
        def stop(self) -> None:
            seen["stopped"] = True

    def fake_train(spark: Any, usecase: Any, options: TrainOptions) -> dict[str, Any]:
        seen.update(spark=spark, usecase=usecase.name, options=options)
        return {"version": options.version, "auc_roc": 0.7}

    monkeypatch.setattr(entrypoint, "create_spark", lambda *args: Session())
    monkeypatch.setattr("headwater.model.spark_training.train", fake_train)

    # When main runs for the test-only use case (its module named, as a stage file names it)
    code = entrypoint.main(["--options-json", options_json("meters", "v9", MINIMAL_USECASE_MODULE)])

    # Then the job got that use case and its options, the session was stopped, one summary line
    assert code == 0
    assert seen["usecase"] == "meters" and seen["options"].version == "v9"
    assert seen["stopped"] is True
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(line) == {"headwater_train": {"version": "v9", "auc_roc": 0.7}}


def test_an_unknown_use_case_fails_before_spark_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entrypoint, "create_spark", lambda *args: pytest.fail("Spark started"))

    with pytest.raises(ValueError, match="unknown use case 'nope'"):
        entrypoint.main(["--options-json", options_json("nope", "v")])
