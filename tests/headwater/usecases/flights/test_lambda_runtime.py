"""The extract and clean handlers on the Python of their container image, on the flights use
case: its SQL source and its HTTP weather source (tests/functions/ runs the test-only one)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from headwater.core.config import Settings
from tests.functions.test_lambda_runtime import (  # noqa: F401 (data_python: the fixture)
    REPO,
    data_python,
    image_python,
    run_handlers,
)


@pytest.mark.slow
def test_extract_and_clean_run_on_the_images_python(
    make_settings: Callable[..., Settings],
    data_python: Path,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
) -> None:
    # Given the test stage (its environment variables) and the events of one day, as files
    make_settings()
    day = {"run_id": "sample-run", "usecase": "flights", "partition": "2013-01-02"}
    events = {
        "extract_flights": {**day, "source": "flights"},
        "extract_weather": {**day, "source": "weather"},
        "clean": day,
    }
    files = []
    for name, event in events.items():
        files.append(str(tmp_path / f"{name}.json"))
        Path(files[-1]).write_text(json.dumps(event), encoding="utf-8")

    # When a fresh interpreter of the image's Python runs the handlers on them
    out = run_handlers(data_python, [REPO], files)

    # Then each answers as on this venv's Python: rows, a file with that many rows
    assert out["python"] == image_python()
    flights, weather, cleaned = out["results"]
    assert weather["rows"] == 24 * 3  # hourly, EWR, JFK and LGA
    assert flights["rows"] > 800 and cleaned["rows"] > 0
    for result in (flights, weather):
        path = Path(result["uri"].removeprefix("file://"))
        assert pq.read_metadata(path).num_rows == result["rows"]
