"""Apply a data contract to a frame: valid rows go on, the rest go to quarantine with a reason."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.errors
import pandera.pandas as pa

REASON = "quarantine_reason"


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
    return text.groupby(failures["index"]).agg("; ".join)


def split_by_contract(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> Split:
    """Validate ``frame`` against ``schema`` and split it into valid and rejected rows.

    Every rejected row keeps its original values plus a ``quarantine_reason``
    naming each failed column and check, so nothing is dropped silently. Failures
    that concern no row (a missing column, say) raise :class:`ContractError`.
    """
    try:
        return Split(
            valid=schema.validate(frame, lazy=True),
            rejected=frame.iloc[0:0].assign(**{REASON: pd.Series(dtype="str")}),
        )
    except pandera.errors.SchemaErrors as exc:
        failures = exc.failure_cases
    whole = failures[failures["index"].isna()]
    if not whole.empty:
        problems = "; ".join(
            f"{row.column or '<frame>'}: {row.check} ({row.failure_case})"
            for row in whole.itertuples()
        )
        raise ContractError(f"{schema.name} contract broken as a whole: {problems}")
    reasons = _reasons(failures)
    bad = frame.index.isin(reasons.index)
    rejected = frame[bad].assign(**{REASON: reasons.reindex(frame.index[bad]).to_numpy()})
    valid = schema.validate(frame[~bad], lazy=True)
    return Split(valid=valid, rejected=rejected)
