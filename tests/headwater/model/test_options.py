"""The training options record: the gate's settings come from GateConfig, its one definition."""

from __future__ import annotations

from datetime import date

from headwater.core.config import GateConfig
from headwater.model.options import TrainOptions


def options(config: dict) -> TrainOptions:
    return TrainOptions(
        "meters", "file:///lake", "v1", date(2013, 1, 1), date(2013, 3, 31), config=config
    )


def test_the_gate_is_read_from_the_recorded_config() -> None:
    gate = options({"gate": GateConfig(confidence=0.9, margin=0.01).model_dump()}).gate

    assert (gate.confidence, gate.margin) == (0.9, 0.01)


def test_without_a_gate_in_the_config_the_defaults_are_gateconfigs() -> None:
    assert options({"stage": "test"}).gate == GateConfig()


def test_the_gate_survives_the_json_the_runner_passes() -> None:
    sent = options({"gate": {"confidence": 0.99}})

    assert TrainOptions.from_json(sent.to_json()).gate.confidence == 0.99
