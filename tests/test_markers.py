"""The suite's markers mean what they say: the fast lane (-m "not spark and not slow") never
starts Spark or an end-to-end fixture, and every test using them carries the marker."""

from __future__ import annotations

import pytest

from tests.conftest import SLOW_FIXTURES, SPARK_FIXTURES


def uses(item: pytest.Item, marker: str) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    if marker == "spark":
        return bool(names & SPARK_FIXTURES)
    return any(n in names and item.nodeid.startswith(p) for n, p in SLOW_FIXTURES.items())


@pytest.mark.parametrize("marker", ["spark", "slow"])
def test_every_selected_test_using_the_fixtures_carries_the_marker(
    request: pytest.FixtureRequest, marker: str
) -> None:
    items = request.session.items

    unmarked = [i.nodeid for i in items if uses(i, marker) and not i.get_closest_marker(marker)]

    assert unmarked == []


@pytest.mark.parametrize("marker", ["spark", "slow"])
def test_a_lane_without_the_marker_selects_no_test_using_the_fixtures(
    request: pytest.FixtureRequest, marker: str
) -> None:
    # Markers added after -m deselected would leave these in the run, marked
    expression = request.config.getoption("markexpr") or ""
    if f"not {marker}" not in expression:
        pytest.skip(f'only meaningful under -m "not {marker} ..."')

    assert [i.nodeid for i in request.session.items if uses(i, marker)] == []
