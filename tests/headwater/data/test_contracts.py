"""split_by_contract: valid rows go on, each bad row is quarantined with a reason, none lost."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pandera.pandas as pa
import pytest

from headwater.data.contracts import REASON, ContractError, split_by_contract

TINY = pa.DataFrameSchema(
    {
        "origin": pa.Column(str, pa.Check.isin(["EWR", "JFK", "LGA"])),
        "distance": pa.Column("float64", [pa.Check.gt(0), pa.Check.le(5000)]),
        "month": pa.Column("int64", pa.Check.in_range(1, 12)),
        "reading_date": pa.Column("datetime64[ns]", coerce=True),
    },
    name="tiny",
)


def _frame() -> pd.DataFrame:
    """Four good rows with a non-default index, as a filtered frame would have."""
    return pd.DataFrame(
        {
            "origin": ["EWR", "JFK", "LGA", "EWR"],
            "distance": [1400.0, 1089.0, 762.0, 719.0],
            "month": [1, 1, 2, 12],
            "reading_date": ["2013-01-01", "2013-01-01", "2013-02-01", "2013-12-31"],
        },
        index=[10, 11, 12, 13],
    )


def test_valid_rows_pass_through_coerced_and_nothing_is_rejected() -> None:
    # Given a frame that meets the contract
    frame = _frame()

    # When it is split
    split = split_by_contract(TINY, frame)

    # Then every row is valid, coerced to the contract's types, and the rejects are empty
    assert list(split.valid.index) == [10, 11, 12, 13]
    assert split.valid["reading_date"].dtype == "datetime64[ns]"
    assert split.valid["reading_date"].iloc[3] == pd.Timestamp("2013-12-31")
    assert split.rejected.empty
    assert list(split.rejected.columns) == [*frame.columns, REASON]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("origin", "XXX", "origin: isin(['EWR', 'JFK', 'LGA']) (got XXX)"),
        ("distance", -5.0, "distance: greater_than(0) (got -5.0)"),
        ("distance", 6000.0, "distance: less_than_or_equal_to(5000) (got 6000.0)"),
        ("distance", None, "distance: not_nullable (got nan)"),
        ("origin", None, "origin: not_nullable (got nan)"),
        ("month", 13, "month: in_range(1, 12) (got 13)"),
        (
            "reading_date",
            "2013-02-30",
            "reading_date: cannot be read as datetime64[ns] (got '2013-02-30')",
        ),
    ],
    ids=["isin", "gt", "le", "null-float", "null-str", "in_range", "coerce"],
)
def test_a_bad_row_is_rejected_naming_column_check_and_value(
    column: str, value: object, reason: str
) -> None:
    # Given one row with one bad value
    frame = _frame()
    frame.loc[12, column] = value

    # When it is split
    split = split_by_contract(TINY, frame)

    # Then only that row is rejected, with its original values and a reason naming the failure
    assert list(split.rejected.index) == [12]
    assert reason in split.rejected.loc[12, REASON].split("; ")
    pd.testing.assert_frame_equal(split.rejected.drop(columns=REASON), frame.loc[[12]])
    assert list(split.valid.index) == [10, 11, 13]


def test_a_row_breaking_two_checks_gets_both_reasons() -> None:
    # Given a row with a bad origin and a bad month, and another with a bad distance
    frame = _frame()
    frame.loc[11, ["origin", "month"]] = ["XXX", 0]
    frame.loc[13, "distance"] = -1.0

    # When it is split
    split = split_by_contract(TINY, frame)

    # Then each rejected row lists every check it broke, and only those
    reasons = split.rejected[REASON].str.split("; ").map(set).to_dict()
    assert reasons == {
        11: {
            "origin: isin(['EWR', 'JFK', 'LGA']) (got XXX)",
            "month: in_range(1, 12) (got 0)",
        },
        13: {"distance: greater_than(0) (got -1.0)"},
    }


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda f: f.drop(columns="month"), "month"),
        # (whole floats in an integer column are cast back: see the test below)
        (lambda f: f.assign(month=f["month"] > 1), "month"),
    ],
    ids=["missing-column", "wrong-dtype"],
)
def test_a_frame_level_failure_raises_contract_error(
    change: Callable[[pd.DataFrame], pd.DataFrame], named: str
) -> None:
    # Given a frame broken as a whole (no row is to blame)
    frame = change(_frame())

    # When / then it is not split but refused, naming the contract and the column
    with pytest.raises(ContractError, match=rf"tiny contract broken as a whole: .*{named}"):
        split_by_contract(TINY, frame)


def test_a_dataframe_check_rejects_the_rows_it_fails() -> None:
    # Given a contract with a check across columns, and one row that breaks it
    schema = pa.DataFrameSchema(
        {"dep_delay": pa.Column("float64", nullable=True), "cancelled": pa.Column(bool)},
        checks=[
            pa.Check(lambda df: df["cancelled"] == df["dep_delay"].isna(), name="delay_iff_flown")
        ],
        name="pair",
    )
    frame = pd.DataFrame({"dep_delay": [3.0, None, 9.0], "cancelled": [False, True, True]})

    # When it is split
    split = split_by_contract(schema, frame)

    # Then the offending row is rejected under that check
    assert list(split.rejected.index) == [2]
    assert "delay_iff_flown" in split.rejected.loc[2, REASON]
    assert list(split.valid.index) == [0, 1]


def test_valid_and_rejected_partition_the_input() -> None:
    # Given a frame with a mix of good and bad rows
    frame = _frame()
    frame.loc[10, "origin"] = "ABC"
    frame.loc[12, "distance"] = 0.0

    # When it is split
    split = split_by_contract(TINY, frame)

    # Then every input row is in exactly one of the two parts
    assert len(split.valid) + len(split.rejected) == len(frame)
    assert set(split.valid.index).isdisjoint(split.rejected.index)
    assert sorted([*split.valid.index, *split.rejected.index]) == list(frame.index)
    assert split.rejected[REASON].notna().all()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1.5, "month: cannot be read as int64 (got 1.5)"),
        (None, "month: not_nullable (got nan)"),
    ],
    ids=["fraction", "missing"],
)
def test_an_integer_column_handed_over_as_floats_rejects_only_its_bad_row(
    value: object, reason: str
) -> None:
    # Given an integer column that arrives as floats (Arrow's int64 with a null, as pandas
    # has it): before, the frame's dtype check failed the whole partition
    frame = _frame().astype({"month": "float64"})
    frame.loc[11, "month"] = value

    # When it is split
    split = split_by_contract(TINY, frame)

    # Then the other rows are valid with the declared integer type, the bad one rejected
    assert list(split.valid.index) == [10, 12, 13]
    assert split.valid["month"].dtype == "int64"
    assert split.valid["month"].tolist() == [1, 2, 12]
    assert split.rejected[REASON].tolist() == [reason]
