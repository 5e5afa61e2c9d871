"""Apply a data contract to a frame: valid rows go on, the rest go to quarantine with a reason.

Besides the contract's own checks, two failures are caught per row rather than for the
whole frame: a text cell in a column the contract declares numeric or a timestamp (a
source hands over text when one of its cells cannot be read as the column's type) is
cast, and a row whose cell cannot be is rejected naming the column and the value; and an
integer column handed over as floats (it held a null, the row of a cell its source could not
read) is cast back, so one bad cell never fails the whole frame's dtype check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import pandera.errors
import pandera.pandas as pa
from pandas.api import types

REASON = "quarantine_reason"
#: A source's column naming, per row, the cells it could not read as their type (null if none).
UNREADABLE = "_unreadable"


class ContractError(ValueError):
    """The frame as a whole breaks its contract (a missing column, say): nothing to salvage."""


@dataclass(frozen=True)
class Split:
    """Rows that met the contract (validated, coerced) and rows that did not."""

    valid: pd.DataFrame
    rejected: pd.DataFrame


def _reasons(failures: pd.DataFrame) -> pd.Series:
    text = (
        failures["column"].fillna("<frame>").astype(str)
        + ": "
        + failures["check"].astype(str)
        + " (got "
        # map(str), not astype(str): pandas 3 keeps NaN missing, which breaks the join below.
        + failures["failure_case"].map(str)
        + ")"
    )
    # A check across columns (month vs date, say) fails once per row, named by the check:
    # pandera reports it once per column of the row.
    across = failures["schema_context"].eq("DataFrameSchema")
    text = text.mask(across, failures["check"].astype(str))
    unique = pd.DataFrame({"index": failures["index"], "text": text}).drop_duplicates()
    return unique["text"].groupby(unique["index"]).agg("; ".join)


def _parse(text: pd.Series, target: object) -> pd.Series | None:
    """``text`` read as ``target`` (missing where it cannot be); None when not a parsed type."""
    if types.is_bool_dtype(target) or not (
        types.is_numeric_dtype(target) or types.is_datetime64_any_dtype(target)
    ):
        return None
    if types.is_datetime64_any_dtype(target):
        aware = getattr(target, "tz", None) is not None
        return pd.to_datetime(text, errors="coerce", utc=aware, format="mixed")
    number = pd.to_numeric(text, errors="coerce")
    if types.is_integer_dtype(target):
        number = number.where(number % 1 == 0)  # 1.5 is no integer
    return number


def _widened_integer(values: pd.Series, target: object) -> bool:
    """True for a float column the contract declares a plain integer.

    Arrow hands an integer column holding a null (a cell its source could not read) to
    pandas as float64; once that row is screened out the column is whole numbers again.
    """
    return (
        types.is_float_dtype(values)
        and types.is_integer_dtype(target)
        and not types.is_extension_array_dtype(target)
    )


def cast_text_columns(
    schema: pa.DataFrameSchema, frame: pd.DataFrame
) -> tuple[pd.DataFrame, pd.Series]:
    """Cast text columns that ``schema`` declares numeric or timestamps; reasons for bad cells.

    Float columns the schema declares plain integers (an integer column that held a null)
    are cast back too: a fraction, or a missing cell where the column is not nullable,
    rejects its row instead of failing the frame's dtype check. Returns the rows whose
    every such cell could be cast, those columns cast (the input
    is not modified), and, indexed like ``frame``, the reason of every other row
    (``column: cannot be read as <type> (got 'value')``).
    """
    parsed, reasons = {}, []
    for name, column in schema.columns.items():
        if name not in frame:
            continue
        target = column.dtype.type
        if types.is_string_dtype(frame[name]) or types.is_object_dtype(frame[name]):
            values = _parse(frame[name], target)
        elif _widened_integer(frame[name], target):
            values = frame[name].where(frame[name] % 1 == 0)
        else:
            continue
        if values is None:
            continue
        failed = frame[name].notna() & values.isna()
        cells = frame[name][failed].map(repr).astype("str")
        reasons.append(name + f": cannot be read as {column.dtype} (got " + cells + ")")
        if not column.nullable and types.is_integer_dtype(target):
            # A missing cell in a plain integer column would fail the frame's dtype check.
            empty = frame[name].isna()
            reasons.append(pd.Series(f"{name}: not_nullable (got nan)", index=frame.index[empty]))
        parsed[name] = values
    if not parsed:
        return frame, pd.Series(dtype="str")
    why = pd.concat(reasons).groupby(level=0).agg("; ".join)
    kept = ~frame.index.isin(why.index)
    out = frame[kept].assign(**{name: values[kept] for name, values in parsed.items()})
    for name in parsed:
        try:
            out[name] = out[name].astype(schema.columns[name].dtype.type)
        except (TypeError, ValueError):
            pass  # missing values left: the contract's nullability decides
    return out, why


def split_by_contract(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> Split:
    """Validate ``frame`` against ``schema`` and split it into valid and rejected rows.

    Every rejected row keeps its original values plus a ``quarantine_reason``
    naming each failed column and check, so nothing is dropped silently. A text cell
    that cannot be read as its column's declared type rejects its row, not the frame
    (:func:`cast_text_columns`). Failures that concern no row (a missing column, say)
    raise :class:`ContractError`.
    """
    candidates, reasons = cast_text_columns(schema, frame)
    try:
        valid = schema.validate(candidates, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        failures = exc.failure_cases
        whole = failures[failures["index"].isna()]
        if not whole.empty:
            problems = "; ".join(
                f"{row.column or '<frame>'}: {row.check} ({row.failure_case})"
                for row in whole.itertuples()
            )
            raise ContractError(f"{schema.name} contract broken as a whole: {problems}") from None
        reasons = pd.concat([reasons, _reasons(failures)])
        valid = schema.validate(candidates[~candidates.index.isin(reasons.index)], lazy=True)
    bad = frame.index.isin(reasons.index)
    rejected = frame[bad].assign(**{REASON: reasons.reindex(frame.index[bad]).to_numpy()})
    if not bad.any():
        rejected = frame.iloc[0:0].assign(**{REASON: pd.Series(dtype="str")})
    return Split(valid=valid, rejected=rejected)


def screen_rows(frame: pd.DataFrame, key: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.Series]:
    """Remove the rows no use case should clean: unreadable cells and duplicates (first kept).

    A row is screened out when its source could not read one of its cells (the
    :data:`UNREADABLE` column names the cell and its text), or when it repeats an earlier
    row: by ``key`` when given, else exactly. Returns the rows kept (``frame``'s index,
    without the :data:`UNREADABLE` column) and the reason of each row removed.
    """
    unreadable = (
        frame[UNREADABLE].notna() if UNREADABLE in frame else pd.Series(False, index=frame.index)
    )
    rest = frame[~unreadable].drop(columns=[UNREADABLE], errors="ignore")
    duplicate = rest.duplicated(subset=list(key) or None, keep="first")
    what = f"by key ({', '.join(key)})" if key else "exact"
    reasons = pd.concat(
        [
            frame.loc[unreadable, UNREADABLE].astype(str) if unreadable.any() else None,
            pd.Series(f"duplicate row ({what}): first row kept", index=rest.index[duplicate]),
        ]
    ).astype("str")
    return rest[~duplicate], reasons.sort_index()
