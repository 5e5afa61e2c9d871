"""Outside headwater/usecases/, the platform names no use case (the acceptance grep of issue 8).

The words are the registered use cases' own (tests/usecases/registered.py): every package
under headwater/usecases/, every use case the local stage enables and every test-only one,
each by its name and the ``vocabulary`` its ``conformance`` member declares.
"""

from __future__ import annotations

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
