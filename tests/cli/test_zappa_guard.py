"""cli/zappa_guard.py: `zappa package|deploy|update` refuse any environment but the lean one.

The refusal is checked on the real Zappa of this virtual environment (Python 3.11, the dev
tools: what a new user has), offline; that the lean environment still packages is checked by
tests/api/test_zappa.py, which builds the package as ``headwater deploy`` does.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from cli.zappa_guard import (
    REFUSED_EXIT,
    VENV_STAMP,
    ZappaCall,
    add_bytecode,
    bytecode_gaps,
    bytecode_name,
    cache_tag,
    check,
    compile_package,
    refusal,
    zappa_call,
)

REPO = Path(__file__).resolve().parents[2]
GUARD = REPO / "cli" / "zappa_guard.py"
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture
def lean_venv(tmp_path: Path) -> Path:
    """A directory marked as headwater deploy marks the Lambda venv it builds."""
    (tmp_path / VENV_STAMP).write_text("{}")
    return tmp_path


def call(command: str = "package", **changes: object) -> ZappaCall:
    fields: dict[str, object] = {
        "command": command,
        "stage": "prod",
        "runtime": "python3.13",
        "python": "3.13",
        "venv": None,
    }
    return ZappaCall(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["package", "deploy", "update"])
def test_the_lean_venv_of_the_runtimes_python_packages(command: str, lean_venv: Path) -> None:
    assert refusal(call(command, venv=lean_venv)) is None


@pytest.mark.parametrize(
    ("python", "stamped", "named"),
    [
        ("3.11", True, ["Zappa runs on Python 3.11, the runtime is python3.13"]),
        ("3.13", False, ["is not the lean Lambda venv headwater deploy builds"]),
        ("3.11", False, ["Python 3.11", "is not the lean Lambda venv"]),
    ],
)
def test_another_python_or_another_venv_is_refused_in_one_line(
    python: str, stamped: bool, named: list[str], tmp_path: Path
) -> None:
    if stamped:
        (tmp_path / VENV_STAMP).write_text("{}")

    reason = refusal(call("update", python=python, venv=tmp_path))

    assert reason is not None and "\n" not in reason
    assert reason.startswith("zappa update prod refused: ")
    for words in named:
        assert words in reason
    assert "`headwater deploy --stage prod`" in reason


def test_no_virtual_environment_is_refused(lean_venv: Path) -> None:
    reason = refusal(call("deploy", stage="dev", venv=None))
    assert reason is not None and "VIRTUAL_ENV is unset" in reason
    assert "`headwater deploy --stage dev`" in reason


def test_package_names_the_command_that_builds_the_package_alone() -> None:
    reason = refusal(call("package", python="3.11", venv=None))
    assert reason is not None
    assert "`make api-package STAGE=prod`" in reason
    assert "headwater deploy --stage prod --dry-run --only api-package" in reason


@pytest.mark.parametrize(
    "command", ["template", "status", "tail", "rollback", "undeploy", "invoke", "schedule"]
)
def test_commands_that_package_nothing_run_from_any_venv(command: str) -> None:
    assert refusal(call(command, python="3.11", venv=None)) is None


@pytest.mark.parametrize("command", ["deploy", "update"])
def test_a_command_handed_its_package_runs_from_any_venv(command: str) -> None:
    # headwater deploy's api step: zappa deploy|update <stage> --zip <the lean package>
    assert refusal(call(command, python="3.11", venv=None, given_package=True)) is None


def fake_cli(command: str, vargs: dict[str, object], venv: Path | None) -> SimpleNamespace:
    zappa = SimpleNamespace(get_current_venv=lambda: venv)
    return SimpleNamespace(
        command=command, api_stage="prod", runtime="python3.13", vargs=vargs, zappa=zappa
    )


@pytest.mark.parametrize(
    ("vargs", "given"),
    [
        ({"zip": None, "docker_image_uri": None}, False),
        ({"zip": "var/deploy/headwater-api-prod.zip"}, True),
        ({"docker_image_uri": "123.dkr.ecr.us-east-1.amazonaws.com/api:1"}, True),
        ({"zip": None, "no_upload": True}, True),
    ],
)
def test_zappas_arguments_say_whether_a_package_was_given(
    vargs: dict[str, object], given: bool, lean_venv: Path
) -> None:
    seen = zappa_call(fake_cli("update", vargs, lean_venv))
    assert seen == ZappaCall("update", "prod", "python3.13", THIS_PYTHON, lean_venv, given)


def test_the_callback_exits_2_naming_what_works(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        check(fake_cli("package", {}, None))

    assert exited.value.code == REFUSED_EXIT == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("error: zappa package prod refused: ")


def test_the_guard_imports_only_the_standard_library() -> None:
    # Zappa loads it alone, in whatever venv runs Zappa: the lean one has no typer, no headwater
    tree = ast.parse(GUARD.read_text())
    imported = {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported - {"__future__"} <= sys.stdlib_module_names


@pytest.mark.parametrize("stage", ["prod", "dev"])
@pytest.mark.parametrize(("position", "doc"), [("settings", "settings"), ("zip", "zip")])
def test_every_stage_names_the_guard_as_zappa_loads_it(
    stage: str, position: str, doc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = json.loads((REPO / "zappa_settings.json").read_text())
    body = settings[stage]
    while "callbacks" not in body and "extends" in body:  # Zappa's merge is shallow
        body = settings[body["extends"]]
    target = body["callbacks"][position]
    # Zappa: "a.b.func" is the file a/b.py of the working directory, loaded as module "b"
    module_path, function = target.rsplit(".", 1)
    *folders, name = module_path.split(".")
    spec = importlib.util.spec_from_file_location(name, REPO.joinpath(*folders, f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # as Zappa's loader registers it
    spec.loader.exec_module(module)
    assert getattr(module, function).__doc__.startswith(f"Zappa's {doc} callback")


def run_zappa(arguments: list[str], venv: Path) -> subprocess.CompletedProcess[str]:
    """This venv's real Zappa, offline: fake credentials, AWS endpoints on a closed port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        VIRTUAL_ENV=str(venv),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # any AWS call fails at once, never leaves here
    )
    return subprocess.run(
        [str(Path(sys.executable).parent / "zappa"), *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("arguments", "works"),
    [
        (["package", "prod"], "`make api-package STAGE=prod`"),
        (["deploy", "prod"], "`headwater deploy --stage prod`"),
        (["update", "dev"], "`headwater deploy --stage dev`"),
    ],
)
def test_zappa_from_the_projects_venv_refuses_in_one_line(
    arguments: list[str], works: str, tmp_path: Path
) -> None:
    # Given the project's .venv (this Python, the dev tools), as a new user has it activated
    assert not (Path(sys.prefix) / VENV_STAMP).exists()
    output = tmp_path / "api.zip"

    # When they type the design card's commands
    done = run_zappa(
        [*arguments, *(["--output", str(output)] * (arguments[0] == "package"))], Path(sys.prefix)
    )

    # Then Zappa stops before packaging or calling AWS, with one line naming what works
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    command, stage = arguments
    assert line.startswith(f"error: zappa {command} {stage} refused: ")
    if THIS_PYTHON != "3.13":
        assert f"Zappa runs on Python {THIS_PYTHON}, the runtime is python3.13" in line
    assert f"{sys.prefix} is not the lean Lambda venv" in line
    assert works in line
    assert not output.exists() and "Package created" not in done.stdout


# -- the zip callback: the runtime's bytecode in the package ---------------------------------

TAG = sys.implementation.cache_tag
SOURCES = {
    "top.py": "VALUE = 'top'\n",
    "pkg/__init__.py": "",
    "pkg/mod.py": "VALUE = 'from the package'\n",
    "broken.py": "def (:\n",  # another Python's syntax: shipped, never imported
    "pkg/data.json": "{}",
}
# Zappa's entries: fixed 1980 times, deflated, rwxr-xr-x
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A small zip written as Zappa writes its package."""
    archive = tmp_path / "headwater-api-prod.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, text in SOURCES.items():
            entry = zipfile.ZipInfo(name, ZIP_TIME)
            entry.create_system, entry.external_attr = 3, 0o755 << 16
            zipped.writestr(entry, text, zipfile.ZIP_DEFLATED)
    return archive


@pytest.mark.parametrize(
    ("source", "tag", "expected"),
    [
        ("pkg/mod.py", "cpython-313", "pkg/__pycache__/mod.cpython-313.pyc"),
        ("top.py", "cpython-313", "__pycache__/top.cpython-313.pyc"),
        ("a/b/__init__.py", "cpython-311", "a/b/__pycache__/__init__.cpython-311.pyc"),
    ],
)
def test_bytecode_is_named_where_the_interpreter_looks(
    source: str, tag: str, expected: str, tmp_path: Path
) -> None:
    assert bytecode_name(source, tag) == expected
    # the interpreter's own answer, for this Python
    cached = importlib.util.cache_from_source(str(tmp_path / source))
    assert Path(cached).relative_to(tmp_path).as_posix() == bytecode_name(source, TAG)


def test_the_runtimes_cache_tag() -> None:
    assert cache_tag("python3.13") == "cpython-313"
    assert cache_tag(f"python{THIS_PYTHON}") == TAG


def test_each_module_gets_unchecked_hash_bytecode_of_this_python(package: Path) -> None:
    # When the zip callback compiles the package
    compiled, failed = add_bytecode(package, THIS_PYTHON)

    # Then every module that compiles has this Python's bytecode where imports look for it,
    # its header this interpreter's magic number, "hash-based, unchecked" and the source's hash
    assert compiled == 3 and failed == ["broken.py"]
    with zipfile.ZipFile(package) as zipped:
        names = zipped.namelist()
        assert bytecode_gaps(names, TAG) == ["broken.py"]
        for source in ("top.py", "pkg/__init__.py", "pkg/mod.py"):
            entry = zipped.getinfo(bytecode_name(source, TAG))
            pyc = zipped.read(entry)
            assert pyc[:4] == importlib.util.MAGIC_NUMBER
            assert int.from_bytes(pyc[4:8], "little") == 0b01
            assert pyc[8:16] == importlib.util.source_hash(SOURCES[source].encode())
            assert entry.compress_type == zipfile.ZIP_DEFLATED
            assert entry.external_attr == 0o755 << 16
        # and what Zappa wrote is there as it was
        for name, text in SOURCES.items():
            assert zipped.read(name) == text.encode()
        assert len(names) == len(SOURCES) + 3


def test_compiling_twice_adds_nothing_twice(package: Path) -> None:
    add_bytecode(package)
    first = package.read_bytes()
    add_bytecode(package)
    assert package.read_bytes() == first


def test_bytecode_of_another_python_is_refused_and_the_zip_left_alone(package: Path) -> None:
    before = package.read_bytes()
    with pytest.raises(ValueError, match=f"Python 3.99 cannot be compiled by Python {THIS_PYTHON}"):
        add_bytecode(package, "3.99")
    assert package.read_bytes() == before
    assert [p.name for p in package.parent.iterdir()] == [package.name]  # no partial zip


USE = """
import sys
sys.path[:0] = [sys.argv[1]]
import top, pkg.mod
print(pkg.mod.VALUE)
"""


def test_a_fresh_interpreter_uses_the_bytecode_whatever_the_files_times(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the package through the zip callback, extracted (times as unzipped: now), and a
    # source edited afterwards, which a timestamp or checked .pyc would notice
    compile_package(SimpleNamespace(zip_path=str(package), runtime=f"python{THIS_PYTHON}"))
    assert f"bytecode ({TAG}) added to {package.name}: 3; 1 not compiled: broken.py" in (
        capsys.readouterr().out
    )
    task = tmp_path / "task"
    zipfile.ZipFile(package).extractall(task)
    (task / "pkg" / "mod.py").write_text("VALUE = 'compiled from source'\n")

    # When a fresh interpreter that writes no bytecode (Lambda's read-only disk) imports it
    ran = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-v", "-c", USE, str(task)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then the modules come from the package's bytecode, never compiled from their source
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "from the package\n"
    loaded = [line for line in ran.stderr.splitlines() if line.startswith("# code object from")]
    ours = [line for line in loaded if str(task) in line]
    assert len(ours) == 3 and all(line.endswith(f".{TAG}.pyc'") for line in ours)
