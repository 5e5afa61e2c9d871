"""Zappa's ``settings`` callback: no API package from any environment but the lean Lambda one.

Zappa zips the site-packages of ``$VIRTUAL_ENV`` for the Python that runs it. Run from the
project's ``.venv`` (Python 3.11 with the dev tools), ``zappa package prod`` builds a 45 MiB
zip whose compiled modules are 3.11's, for the python3.13 runtime: a function that fails at
import. ``headwater deploy`` builds ``.venv-lambda`` with the runtime's Python and the API's
requirements only, marks it with :data:`VENV_STAMP`, and packages from there.

zappa_settings.json names :func:`check` as its ``settings`` callback, which Zappa calls once
the stage is loaded, before the command does anything. Zappa loads this file on its own (not
as part of ``cli``) in whichever environment runs it, the lean one included: standard library
only. The API package excludes ``cli/``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Written into a venv by cli.deploy_steps.build_api_package: the lean Lambda venv's mark.
VENV_STAMP = ".headwater-requirements"
# The Zappa commands that zip the current venv unless handed a package (or an image).
PACKAGING_COMMANDS = frozenset({"package", "deploy", "update"})
# Bad input, as every headwater command exits for it.
REFUSED_EXIT = 2


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
