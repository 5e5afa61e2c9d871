"""The thin Spark entrypoint: its command line, the options it hands the generic job, main."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

import emr_jobs.train as entrypoint
from headwater.model.spark_training import TrainOptions


def test_the_command_line_becomes_the_generic_jobs_options() -> None:
    args = entrypoint.parse_args(
        [
            "--usecase", "bikeshare", "--usecase-module", "my.module", "--lake", "file:///l",
            "--version", "v1", "--start", "2011-01-01", "--end", "2012-12-31",
            "--holdout-from", "2012-09-01", "--production-version", "v0", "--run-id", "r",
            "--code-version", "abc", "--config-json", '{"stage": "x"}', "--reg-param", "0.01",
            "--region", "eu-west-1", "--endpoint-url", "http://127.0.0.1:1",
        ]
    )  # fmt: skip

    assert (args.usecase, args.usecase_module) == ("bikeshare", "my.module")
    assert entrypoint.train_options(args) == TrainOptions(
        lake="file:///l",
        version="v1",
        start=date(2011, 1, 1),
        end=date(2012, 12, 31),
        grain="month",
        holdout_from=date(2012, 9, 1),
        production_version="v0",
        run_id="r",
        code_version="abc",
        config={"stage": "x"},
        reg_param=0.01,
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:1",
    )


def test_the_use_case_is_required() -> None:
    with pytest.raises(SystemExit):
        entrypoint.parse_args(["--lake", "file:///l", "--version", "v", "--start", "2013-01-01",
                               "--end", "2013-01-02"])  # fmt: skip


def test_main_trains_the_named_use_case_and_prints_one_summary_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a session and a job that record what they are given
    seen: dict[str, Any] = {}

    class Session:
        def stop(self) -> None:
            seen["stopped"] = True

    def fake_train(spark: Any, usecase: Any, options: TrainOptions) -> dict[str, Any]:
        seen.update(spark=spark, usecase=usecase.name, options=options)
        return {"version": options.version, "auc_roc": 0.7}

    monkeypatch.setattr(entrypoint, "create_spark", lambda args: Session())
    monkeypatch.setattr("headwater.model.spark_training.train", fake_train)

    # When main runs for the flights use case
    code = entrypoint.main(["--usecase", "flights", "--lake", "file:///l", "--version", "v9",
                            "--start", "2013-01-01", "--end", "2013-02-01"])  # fmt: skip

    # Then the job got that use case and its options, the session was stopped, one summary line
    assert code == 0
    assert seen["usecase"] == "flights" and seen["options"].version == "v9"
    assert seen["stopped"] is True
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(line) == {"headwater_train": {"version": "v9", "auc_roc": 0.7}}


def test_an_unknown_use_case_fails_before_spark_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entrypoint, "create_spark", lambda args: pytest.fail("Spark started"))

    with pytest.raises(ValueError, match="unknown use case 'nope'"):
        entrypoint.main(["--usecase", "nope", "--lake", "file:///l", "--version", "v",
                         "--start", "2013-01-01", "--end", "2013-01-02"])  # fmt: skip
