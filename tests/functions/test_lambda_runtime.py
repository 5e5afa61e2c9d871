"""The extract and clean handlers on the Python of their container image, not this venv's.

infrastructure/functions.Dockerfile builds on AWS's Lambda base image of one Python
version; a session-scoped virtual environment of that version gets the core and the
``data`` extra (as the image's ``pip install .[data]`` does), and a fresh interpreter of
it imports the handlers from this tree and calls them on the sample events.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cli.deploy_steps import find_python
from headwater.core.config import Settings
from tests.functions.conftest import MINIMAL_USECASE_DIR, SOURCE, USECASE

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "events"

INVOKE = r"""
import json, os, sys
sys.path[:0] = sys.argv[1].split(os.pathsep)  # this tree, and the use case's own directory

class Context:
    function_name = "headwater-test-extract"
    aws_request_id = "8f3b2c1e-5a4d-4e6f-9b8a-7c6d5e4f3a2b"
    def get_remaining_time_in_millis(self):
        return 900000

from functions import clean, extract
out = {"python": "%d.%d" % sys.version_info[:2], "results": []}
for name in sys.argv[2:]:
    with open(name) as f:
        event = json.load(f)
    handler = clean if os.path.basename(name).startswith("clean") else extract
    out["results"].append(handler.lambda_handler(event, Context()))
print("RESULT " + json.dumps(out))
"""


def image_python() -> str:
    """The Python version of the functions' image (its FROM line)."""
    dockerfile = (REPO / "infrastructure" / "functions.Dockerfile").read_text()
    (version,) = re.findall(r"^FROM public\.ecr\.aws/lambda/python:(3\.\d+)", dockerfile, re.M)
    return version


@pytest.fixture(scope="session")
def data_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv of the image's Python with the core and the data extra; its interpreter."""
    version = image_python()
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} here (pyenv install {version}): the functions' image's")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["data"]]
    # One venv per session, whichever module asks (a use case's folder imports this fixture).
    venv = tmp_path_factory.getbasetemp() / "functions-venv"
    interpreter = venv / "bin" / "python"
    if (venv / "ready").exists():
        return interpreter
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    for command in (
        [str(python), "-m", "venv", str(venv)],
        # --no-compile: pip byte-compiled every installed file of pandas, numpy and pyarrow
        # (install 38 -> 11 s); the handlers' first import compiles only what they load.
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-compile", *requirements],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    (venv / "ready").touch()
    return interpreter


def run_handlers(python: Path, paths: list[Path], events: list[str]) -> dict[str, Any]:
    """Run the handlers on ``events`` in a fresh interpreter ``python``, ``paths`` first on its
    path; its answer: the Python version and each handler's result."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(python), "-c", INVOKE, os.pathsep.join(map(str, paths)), *events],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.split("RESULT ", 1)[1])


@pytest.mark.slow
def test_extract_and_clean_run_on_the_images_python(
    meters_stage: Settings, data_python: Path
) -> None:
    # Given the test stage (its environment variables) and the sample events of one day
    events = [str(EVENTS / f"{name}.json") for name in (f"extract_{SOURCE}", f"clean_{USECASE}")]

    # When a fresh interpreter of the image's Python runs the handlers on them
    out = run_handlers(data_python, [REPO, MINIMAL_USECASE_DIR], events)

    # Then each answers as on this venv's Python: rows, a file with that many rows
    assert out["python"] == image_python()
    extracted, cleaned = out["results"]
    assert extracted["rows"] > 0 and cleaned["rows"] > 0
    path = Path(extracted["uri"].removeprefix("file://"))
    assert pq.read_metadata(path).num_rows == extracted["rows"]
    assert cleaned["reconciliation"][SOURCE]["in"] == extracted["rows"]
