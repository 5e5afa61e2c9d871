"""Zappa's callbacks: no API package from any environment but the lean Lambda one, and bytecode.

Zappa zips the site-packages of ``$VIRTUAL_ENV`` for the Python that runs it. Run from the
project's ``.venv`` (Python 3.11 with the dev tools), ``zappa package prod`` builds a 45 MiB
zip whose compiled modules are 3.11's, for the python3.13 runtime: a function that fails at
import. ``headwater deploy`` builds ``.venv-lambda`` with the runtime's Python and the API's
requirements only, marks it with :data:`VENV_STAMP`, and packages from there.

zappa_settings.json names :func:`check` as its ``settings`` callback, which Zappa calls once
the stage is loaded, before the command does anything. Zappa loads this file on its own (not
as part of ``cli``) in whichever environment runs it, the lean one included: standard library
only. The API package excludes ``cli/``.

Its ``zip`` callback, :func:`add_bytecode`, which Zappa calls once the zip is built (``zappa
package``, ``deploy`` and ``update`` without ``--zip``), compiles every module of the package:
Zappa ships no ``__pycache__`` and Lambda's file system is read-only, so without it every cold
start compiles Flask, pydantic and our code again (about 4x the instructions). The settings
callback has made sure the Python running Zappa is the runtime's, so the bytecode is its own.
"""

from __future__ import annotations

import os
import py_compile
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Written into a venv by cli.deploy_steps.build_api_package: the lean Lambda venv's mark.
VENV_STAMP = ".headwater-requirements"
# The Zappa commands that zip the current venv unless handed a package (or an image).
PACKAGING_COMMANDS = frozenset({"package", "deploy", "update"})
# Bad input, as every headwater command exits for it.
REFUSED_EXIT = 2
# Zip entry times are Zappa's (1980-01-01) and Lambda's extracted files keep no useful mtime:
# a timestamp .pyc would never match its source, an unchecked hash one is used as it is.
PYC_MODE = py_compile.PycInvalidationMode.UNCHECKED_HASH


@dataclass(frozen=True)
class ZappaCall:
    """One Zappa command as the guard sees it: what it would package, with which Python."""

    command: str
    stage: str
    runtime: str
    python: str
    venv: Path | None
    given_package: bool = False


def what_works(call: ZappaCall) -> str:
    """The command that does what ``call`` wanted, right."""
    if call.command == "package":
        return (
            f"`make api-package STAGE={call.stage}` (`headwater deploy --stage {call.stage} "
            "--dry-run --only api-package`) builds it in .venv-lambda"
        )
    return (
        f"`headwater deploy --stage {call.stage}` builds the package in .venv-lambda and runs "
        f"zappa {call.command} with it"
    )


def refusal(call: ZappaCall) -> str | None:
    """One line saying why ``call`` would package the wrong environment; None if it is fine."""
    if call.command not in PACKAGING_COMMANDS or call.given_package:
        return None
    wanted = call.runtime.removeprefix("python")
    problems = []
    if call.python != wanted:
        problems.append(
            f"Zappa runs on Python {call.python}, the runtime is {call.runtime} (compiled "
            f"modules of {call.python} do not import there)"
        )
    if call.venv is None:
        problems.append("no virtual environment to package (VIRTUAL_ENV is unset)")
    elif not (call.venv / VENV_STAMP).is_file():
        problems.append(
            f"{call.venv} is not the lean Lambda venv headwater deploy builds (Zappa zips "
            "all it holds)"
        )
    if not problems:
        return None
    return f"zappa {call.command} {call.stage} refused: {'; '.join(problems)}; {what_works(call)}"


def zappa_call(cli: Any) -> ZappaCall:
    """The guard's view of Zappa's ``ZappaCLI`` object, its settings loaded."""
    vargs = cli.vargs or {}
    given = bool(vargs.get("zip") or vargs.get("docker_image_uri") or vargs.get("no_upload"))
    return ZappaCall(
        command=str(cli.command),
        stage=str(cli.api_stage),
        runtime=str(cli.runtime),
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        venv=cli.zappa.get_current_venv(),
        given_package=given,
    )


def check(cli: Any) -> None:
    """Zappa's settings callback: exit 2 with one line if the command would package wrongly."""
    reason = refusal(zappa_call(cli))
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        raise SystemExit(REFUSED_EXIT)


def cache_tag(runtime: str) -> str:
    """``python3.13`` -> ``cpython-313``: the tag of the runtime's bytecode file names."""
    return "cpython-" + runtime.removeprefix("python").replace(".", "")


def bytecode_name(source: str, tag: str) -> str:
    """``pkg/mod.py`` -> ``pkg/__pycache__/mod.<tag>.pyc``, where the interpreter looks first."""
    folder, _, name = source.rpartition("/")
    return f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc".lstrip("/")


def bytecode_gaps(names: Iterable[str], tag: str) -> list[str]:
    """The ``.py`` entries among a package's ``names`` without a ``.pyc`` of ``tag``."""
    present = set(names)
    return sorted(n for n in present if n.endswith(".py") and bytecode_name(n, tag) not in present)


def add_bytecode(archive: Path, python: str | None = None) -> tuple[int, list[str]]:
    """Rewrite ``archive`` (atomically) with this Python's bytecode of each ``.py`` it holds.

    Returns how many modules were compiled and the entries that do not compile (a syntax of
    another Python, never imported: they stay source only). ``python`` (``3.13``) must be
    this interpreter's version, so that the bytecode is the runtime's.
    """
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python is not None and python != running:
        raise ValueError(f"bytecode for Python {python} cannot be compiled by Python {running}")
    tag = sys.implementation.cache_tag
    compiled: list[tuple[zipfile.ZipInfo, bytes]] = []
    failed = []
    with zipfile.ZipFile(archive) as old, tempfile.TemporaryDirectory() as scratch:
        sources = [i for i in old.infolist() if i.filename.endswith(".py") and not i.is_dir()]
        for info in sources:
            source = Path(scratch, "source.py")
            source.write_bytes(old.read(info))
            target = Path(scratch, "source.pyc")
            try:
                py_compile.compile(
                    str(source),
                    str(target),
                    dfile=info.filename,
                    doraise=True,
                    invalidation_mode=PYC_MODE,
                )
            except py_compile.PyCompileError:
                failed.append(info.filename)
                continue
            entry = zipfile.ZipInfo(bytecode_name(info.filename, tag), info.date_time)
            entry.create_system, entry.external_attr = info.create_system, info.external_attr
            compiled.append((entry, target.read_bytes()))
        added = {entry.filename for entry, _ in compiled}
        handle, partial = tempfile.mkstemp(prefix=f".{archive.name}.", dir=archive.parent)
        os.close(handle)
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as new:
                for info in old.infolist():
                    if info.filename not in added:
                        new.writestr(info, old.read(info), info.compress_type)
                for entry, data in compiled:
                    new.writestr(entry, data, zipfile.ZIP_DEFLATED)
            os.chmod(partial, archive.stat().st_mode)  # mkstemp's file is private
            os.replace(partial, archive)
        except BaseException:
            os.unlink(partial)
            raise
    return len(compiled), failed


def compile_package(cli: Any) -> None:
    """Zappa's zip callback: the package Zappa just built gets the runtime's bytecode."""
    archive = Path(cli.zip_path)
    count, failed = add_bytecode(archive, str(cli.runtime).removeprefix("python"))
    skipped = f"; {len(failed)} not compiled: {', '.join(failed)}" if failed else ""
    print(f"bytecode ({sys.implementation.cache_tag}) added to {archive.name}: {count}{skipped}")
