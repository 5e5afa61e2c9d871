"""Outside headwater/usecases/, the platform names no use case (the acceptance grep of issue 8);
outside a use case's own test folder, the tests name none either (issue 17).

The words are the registered use cases' own (tests/usecases/registered.py): every package
under headwater/usecases/, every use case the local stage enables and every test-only one,
each by its name and the ``vocabulary`` its ``conformance`` member declares. In ``tests/``
the test-only use cases (tests/usecases/*/) are the suite's own: a platform test runs on
them, so their words are free there; a shipped use case's words belong in its folder
``tests/headwater/usecases/<name>/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.usecases.registered import (
    REPO,
    enabled,
    only_in_tests,
    packaged,
    vocabulary,
    words_pattern,
)

REGISTERED = {**packaged(), **enabled(), **only_in_tests()}
WORDS = vocabulary(REGISTERED)
NAMES = words_pattern(WORDS)
# Every room of the core library but the use cases' own, and every deployable.
PLATFORM = [
    *sorted(
        p.relative_to(REPO).as_posix()
        for p in (REPO / "headwater").iterdir()
        if p.name not in {"usecases", "__pycache__"} and (p.is_dir() or p.suffix == ".py")
    ),
    "emr_jobs",
    "luigi_tasks",
    "api",
    "functions",
    "cli",
]


def test_the_words_are_every_registered_use_case_and_its_vocabulary() -> None:
    assert REGISTERED, "no use case found"
    for name, candidate in REGISTERED.items():
        spec = getattr(candidate.usecase(), "conformance", None)
        assert {name, *(spec.vocabulary if spec else ())} <= set(WORDS), name


@pytest.mark.parametrize(
    ("line", "found"),
    [
        pytest.param("to ``raw/{name}/``", True, id="the-name"),
        pytest.param("{Name}UseCase", True, id="capitalised"),
        pytest.param("prefix_{name}s", True, id="after-an-underscore"),
        pytest.param("x{name}", False, id="inside-another-word"),
    ],
)
def test_a_name_is_found_where_a_word_starts(line: str, found: bool) -> None:
    for name in REGISTERED:
        text = line.format(name=name, Name=name.capitalize())
        assert bool(NAMES.search(text)) is found, text


@pytest.mark.parametrize("where", PLATFORM)
def test_no_platform_file_names_a_use_case(where: str) -> None:
    root = REPO / where
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    assert files

    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if NAMES.search(line)
    ]

    assert found == []


# -- tests/: a shipped use case is named only in its own test folder ----------------------------
# Shipped: packaged under headwater/usecases/ (a use case enabled from elsewhere, as
# test_any_use_case_joins.py does with a temporary one, has no folder here to keep its name in).
SHIPPED = packaged()
SHIPPED_NAMES = words_pattern(vocabulary(SHIPPED))
#: Each shipped use case's own test folder: the only place in tests/ that may name it.
OWN_FOLDERS = tuple(f"tests/headwater/usecases/{name}/" for name in sorted(SHIPPED))


def files_in_tests() -> list[str]:
    """Every file under tests/ but the shipped use cases' own folders and this one."""
    this = Path(__file__).resolve().relative_to(REPO).as_posix()
    files = []
    for path in sorted((REPO / "tests").rglob("*")):
        where = path.relative_to(REPO).as_posix()
        if (
            path.is_file()
            and "__pycache__" not in path.parts
            and not where.startswith(OWN_FOLDERS)
            and where != this
        ):
            files.append(where)
    return files


def naming(where: str) -> list[str]:
    """Where the file ``where`` names a shipped use case: its path, then its lines."""
    found = [f"{where}: (its path)"] if SHIPPED_NAMES.search(where) else []
    try:
        text = (REPO / where).read_text(encoding="utf-8")
    except UnicodeDecodeError:  # a binary fixture holds no words
        return found
    return found + [
        f"{where}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), 1)
        if SHIPPED_NAMES.search(line)
    ]


def test_the_shipped_use_cases_have_each_a_folder_and_a_word() -> None:
    assert SHIPPED, "no shipped use case found"
    for name in SHIPPED:
        assert f"tests/headwater/usecases/{name}/" in OWN_FOLDERS
        assert SHIPPED_NAMES.search(f"test_{name}.py"), name
    for name in only_in_tests():  # the suite's own: free in tests/
        assert not SHIPPED_NAMES.search(name), name


def test_no_test_outside_a_use_cases_folder_names_one() -> None:
    found = [hit for where in files_in_tests() for hit in naming(where)]

    assert found == [], (
        "move these into tests/headwater/usecases/<name>/ or run them on every registered "
        "use case (tests/usecases/registered.py) or on the test-only one"
    )
