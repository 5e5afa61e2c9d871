"""Every Spark the suite starts runs with the suite's JVM options (tests/conftest.py): the
session's own JVM and the spark-submit of a test stage's training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater.core.config import Settings
from headwater.model.runners import LocalSparkRunner
from tests.conftest import TEST_JVM_OPTIONS

pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


def test_the_sessions_jvm_was_started_with_the_test_options(spark: Any) -> None:
    # Given the session's SparkSession, when its JVM is asked for its own command line
    runtime = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    arguments = set(runtime.getInputArguments())

    # Then every option is there
    assert set(TEST_JVM_OPTIONS.split()) <= arguments


def test_a_test_stages_training_is_submitted_with_the_test_options(
    make_minimal_stage: Callable[..., Settings], tmp_path: Path
) -> None:
    # Given a test stage, when its training's spark-submit command is built
    command = LocalSparkRunner(make_minimal_stage(), tmp_path / "train.py").command([])

    # Then spark-submit hands the options to the driver's JVM
    assert command[command.index("--driver-java-options") + 1] == TEST_JVM_OPTIONS
