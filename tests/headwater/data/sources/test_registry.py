"""The source-kind registry: lazy, extensible, and its errors name the known kinds."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from headwater.core.config import SourceConfig
from headwater.core.usecase import SourceContext
from headwater.data import sources
from headwater.data.sources import (
    SnapshotUnsupported,
    SourceOptionsError,
    UnknownSourceKind,
    get_kind,
    register_kind,
    register_usecase_kinds,
    validate_source,
)


def test_the_registry_module_imports_no_source_library() -> None:
    code = (
        "import sys, headwater.data.sources, headwater.core.config;"
        "heavy = [m for m in ('pandas', 'pyarrow', 'sqlalchemy', 'requests') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("name", "http"), [("sql", False), ("openmeteo", True), ("json_pages", True)]
)
def test_builtin_kinds_load_and_declare_http(name: str, http: bool) -> None:
    assert get_kind(name).http is http


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(UnknownSourceKind, match=r"'ftp'.*json_pages, openmeteo, sql"):
        get_kind("ftp")


def test_register_kind_plugs_in_a_third_party_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "KINDS", dict(sources.KINDS))
    register_kind("csv_files", "headwater.data.sources.sql:KIND")
    assert get_kind("csv_files") is get_kind("sql")
    with pytest.raises(ValueError, match="module:attr"):
        register_kind("bad", "no_colon_here")
    register_kind("broken", "headwater.data.sources.sql:NOPE")
    with pytest.raises(UnknownSourceKind, match="cannot be loaded"):
        get_kind("broken")


def test_validate_source_checks_the_kind_keys() -> None:
    ok = validate_source(SourceConfig(kind="sql", url="sqlite:///x.db", table="t"))
    assert ok.chunk_rows == 50_000 and ok.date_column is None
    with pytest.raises(SourceOptionsError, match=r"kind 'sql'\): chunk_rows"):
        validate_source(SourceConfig(kind="sql", url="u", table="t", chunk_rows=0))
    with pytest.raises(SourceOptionsError, match="typo_key"):
        validate_source(SourceConfig(kind="json_pages", base_url="http://x", typo_key=1))


def test_http_kinds_share_the_http_policy_keys() -> None:
    pages = validate_source(SourceConfig(kind="json_pages", base_url="http://x"))
    meteo = validate_source(SourceConfig(kind="openmeteo", base_url="http://x"))
    for options in (pages, meteo):
        assert isinstance(options, sources.HttpSourceOptions)
        assert (options.rate_limit_per_second, options.max_retries) == (5.0, 5)
    with pytest.raises(SourceOptionsError, match="rate_limit_per_second"):
        validate_source(
            SourceConfig(kind="json_pages", base_url="http://x", rate_limit_per_second=0)
        )


def test_http_kinds_cannot_snapshot() -> None:
    ctx = SourceContext("u", "weather", "UTC", None, lambda v: v)
    options = validate_source(SourceConfig(kind="json_pages", base_url="http://x"))
    with pytest.raises(SnapshotUnsupported, match=r"'weather'.*'json_pages'"):
        get_kind("json_pages").snapshot(options, ctx, date(2020, 1, 1))


@pytest.mark.parametrize("kind", ["openmeteo", "json_pages"])
def test_an_http_kind_refuses_a_request_of_another_type(kind: str) -> None:

    ctx = SourceContext(
        usecase="u", source="s", timezone="UTC", request=object(), resolve=lambda value: value
    )
    options = get_kind(kind).Config(base_url="http://127.0.0.1:1/")
    with pytest.raises(TypeError, match=r"source_request\('s'\) must return a \w+Request "):
        get_kind(kind).extract(options, ctx, None)


# --- kinds a use case brings --------------------------------------------------------------------


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "KINDS", dict(sources.KINDS))
    monkeypatch.setattr(sources, "_loaded", dict(sources._loaded))


def _case(kinds: object) -> SimpleNamespace:
    return SimpleNamespace(name="rain", source_kinds=kinds)


def test_a_use_cases_kinds_are_registered_once_and_never_replace_another(
    fresh_registry: None,
) -> None:
    case = _case({"sql_again": "headwater.data.sources.sql:KIND"})

    assert register_usecase_kinds(case) == ["sql_again"]
    assert register_usecase_kinds(case) == ["sql_again"]  # loading it again is harmless
    assert get_kind("sql_again") is get_kind("sql")
    assert register_usecase_kinds(SimpleNamespace(name="plain")) == []  # the member is optional
    with pytest.raises(ValueError, match=r"brings source kind 'sql_again' \(m:K\).*already"):
        register_usecase_kinds(_case({"sql_again": "m:K"}))
    with pytest.raises(ValueError, match=r"source_kinds\['x'\] must be 'module:attr'"):
        register_usecase_kinds(_case({"x": "no_colon"}))


def test_loading_a_use_case_registers_its_kinds_for_extraction(
    fresh_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.core.config import load_settings
    from headwater.core.partitions import parse_partition
    from headwater.data.pipeline import extract_partition

    # Given a use case of a temporary directory whose source is of a kind it brings
    (tmp_path / "hail_usecase.py").write_text(
        "from types import SimpleNamespace\n"
        "USECASE = SimpleNamespace(name='hail', timezone='UTC', sources=('daily',),\n"
        "    references=(), source_request=lambda s: None,\n"
        "    source_kinds={'sql_rows': 'headwater.data.sources.sql:KIND'})\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    db = tmp_path / "hail.sqlite"
    with sqlite3.connect(db) as connection:
        connection.execute("create table days (day date, hail int)")
        connection.execute("insert into days values ('2013-01-01', 1), ('2013-01-02', 0)")
    source = {"kind": "sql_rows", "url": f"sqlite:///{db}", "table": "days", "date_column": "day"}
    usecase = {"module": "hail_usecase", "sources": {"daily": source}}
    settings = load_settings(
        "local",
        overrides={"lake": {"uri": f"file://{tmp_path}/lake"}, "usecase": {"hail": usecase}},
    )

    # When a partition is extracted (no one registered the kind beforehand)
    try:
        result = extract_partition(
            settings, "hail", "daily", parse_partition("2013-01-01", "day"), "r1"
        )
    finally:
        sys.modules.pop("hail_usecase", None)

    # Then the use case's kind read it
    assert result.rows == 1
