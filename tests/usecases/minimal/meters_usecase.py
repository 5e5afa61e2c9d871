"""A minimal use case that lives only under tests/: hourly meter loads, is an hour overloaded?

It is the proof that the contract in :mod:`headwater.core.usecase` is complete: it goes
through the same conformance suite as the shipped use cases (demo data, extract, clean
and reconcile, train, export parity, gate, serve) with no edit outside this file.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from headwater.core.usecase import (
    AnswerShape,
    Baseline,
    CleanResult,
    ConformanceSpec,
    DemoReport,
    OutcomeSpec,
    Quantity,
    ServingSpec,
    TrainingSpec,
)

OVERLOAD_KW = 8.0
METERS = ("m1", "m2", "m3")
FIRST_DAY, DAYS = date(2013, 1, 1), 62
REASON = "quarantine_reason"

CLEAN_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("hour", pa.int32(), nullable=False),
        pa.field("meter", pa.string(), nullable=False),
        pa.field("load_kw", pa.float64(), nullable=False),
        pa.field("overload", pa.bool_(), nullable=False),
    ]
)


def load(meter: str, day: date, hour: int) -> float:
    """The demo load: a daily cycle per meter, higher on weekdays, deterministic."""
    base = 2.0 + METERS.index(meter) * 2.5 + 4.0 * math.sin(math.pi * hour / 24)
    return round(base + (1.5 if day.weekday() < 5 else 0.0) + ((day.day * 7 + hour) % 5) * 0.3, 3)


# -- data half ----------------------------------------------------------------------------------
def clean(raw: Mapping[str, Any], partition: Any, timezone: str) -> CleanResult:
    """Keep rows with a known load, an hour of the day and a date inside the partition."""
    import pandas as pd

    frame = raw["readings"]
    days = pd.to_datetime(frame["day"]).dt.date
    reasons = pd.Series("", index=frame.index, dtype=object)
    reasons[frame["load_kw"].isna()] = "load_kw: missing"
    reasons[~frame["hour"].between(0, 23)] = "hour: not 0-23"
    reasons[(days < partition.start) | (days >= partition.end)] = "day: outside the partition"
    bad = reasons != ""
    good = frame[~bad]
    out = pd.DataFrame(
        {
            "date": days[~bad],
            "hour": good["hour"].astype("int32"),
            "meter": good["meter"].astype(str),
            "load_kw": good["load_kw"].astype("float64"),
            "overload": good["load_kw"] > OVERLOAD_KW,
        }
    )
    rejected = frame[bad].assign(**{REASON: reasons[bad]})
    return CleanResult(
        clean=out.reset_index(drop=True),
        quarantine={"readings": rejected},
        rows_in={"readings": len(frame)},
        rows_out={"readings": len(out)},
    )


def build_demo_data(sources: Mapping[str, Any], replace: bool) -> DemoReport:
    """Write the readings table (plus one row without a load) into the configured SQLite file."""
    url = sources["readings"].options()["url"]
    path = Path(url.removeprefix("sqlite:///"))
    if path.exists() and not replace:
        return DemoReport(url=url, tables={"readings": -1})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rows = [
        ((FIRST_DAY + timedelta(days=d)).isoformat(), h, m, load(m, FIRST_DAY + timedelta(d), h))
        for d in range(DAYS)
        for h in range(24)
        for m in METERS
    ]
    rows.append((FIRST_DAY.isoformat(), 3, "m1", None))  # quarantined: no load
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE readings (day DATE, hour INTEGER, meter TEXT, load_kw REAL)")
        db.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)", rows)
    return DemoReport(url=url, tables={"readings": len(rows)})


# -- features: one definition for Spark and the API ---------------------------------------------
@dataclass(frozen=True)
class Lookups:
    """Nothing to look up but the meters seen in training (kept to show the round trip)."""

    meters: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def load_lookups(body: Mapping[str, Any]) -> Lookups:
    """Inverse of :meth:`Lookups.to_dict`."""
    return Lookups(meters=tuple(body.get("meters", ())))


def build_lookups(train: Any, references: Mapping[str, Any], everything: Any) -> Lookups:
    """The meters of the training period (one small Spark job)."""
    rows = train.select("meter").distinct().collect()
    return Lookups(meters=tuple(sorted(row.meter for row in rows)))


def features_record(meter: str, day: date, hour: int) -> dict[str, Any]:
    """The features of one meter-hour (plain Python)."""
    return {"meter": meter, "hour_of_day": f"{hour:02d}", "weekend": float(day.weekday() >= 5)}


def features_frame(frame: Any, lookups: Lookups) -> Any:
    """The features of a pandas batch, through the same function as the API."""
    import pandas as pd

    records = [
        features_record(m, d, int(h))
        for m, d, h in zip(frame["meter"], frame["date"], frame["hour"], strict=True)
    ]
    return pd.DataFrame.from_records(records, columns=["meter", "hour_of_day", "weekend"])


TRAINING = TrainingSpec(
    dataset="readings",
    date_column="date",
    references=(),
    label=Quantity("overload", "overloaded hour"),
    target=Quantity("load_kw", "load", "kW"),
    categorical=("meter", "hour_of_day"),
    numeric=("weekend",),
    input_columns=("meter", "date", "hour"),
    baselines=(
        Baseline("base_rate", (), "the training share of overloaded hours"),
        Baseline("meter_rate", ("meter",), "the share of overloaded hours per meter"),
    ),
    human_names={"meter": "meter", "hour_of_day": "hour of day", "weekend": "weekend"},
    build_lookups=build_lookups,
    features_frame=features_frame,
    load_lookups=load_lookups,
)


# -- serving ------------------------------------------------------------------------------------
class MeterHour(BaseModel):
    """One meter-hour to score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meter: Annotated[str, Field(pattern=r"^m[0-9]$", description="the meter id, e.g. m1")]
    hour_start: Annotated[datetime, Field(description="local start of the hour, ISO 8601")]


SERVING = ServingSpec(
    request_model=MeterHour,
    example={"meter": "m2", "hour_start": "2013-02-20T18:00"},
    answer=AnswerShape(
        echo="reading",
        probability="overload_probability",
        decision="overloaded",
        estimate="expected_load_kw",
    ),
    features_record=lambda r, lookups: (
        features_record(r.meter, r.hour_start.date(), r.hour_start.hour),
        [],
    ),
    describe=lambda r: {"meter": r.meter, "hour_start": r.hour_start.isoformat()},
    listed_categories=("meter",),
    description="Is a meter overloaded in an hour (load above 8 kW), and its expected load.",
    request_of_row=lambda row: {
        "meter": row["meter"],
        "hour_start": f"{row['date'].isoformat()}T{int(row['hour']):02d}:00",
    },
)


def hour_of(echo: Mapping[str, Any]) -> datetime:
    """The local start of a served meter-hour."""
    return datetime.fromisoformat(str(echo["hour_start"]))


OUTCOME = OutcomeSpec(
    key_columns=("meter", "date", "hour"),
    key_of_request=lambda echo: {
        "meter": str(echo["meter"]),
        "date": hour_of(echo).date(),
        "hour": hour_of(echo).hour,
    },
    event_time=hour_of,
    known_after=timedelta(hours=1),
)


@dataclass(frozen=True)
class MetersUseCase:
    """The minimal use case: one SQL source, no references, no HTTP, no embedded server."""

    name: str = "meters"
    title: str = "Meter overload (test-only use case)"
    timezone: str = "UTC"
    sources: tuple[str, ...] = ("readings",)
    references: tuple[str, ...] = ()
    clean_dataset: str = "readings"
    conformance: ConformanceSpec = ConformanceSpec(FIRST_DAY, date(2013, 3, 2))
    training: TrainingSpec = TRAINING
    serving: ServingSpec = SERVING
    outcome: OutcomeSpec = OUTCOME

    def source_request(self, source: str) -> None:
        """SQL sources need nothing from the use case."""
        return None

    def clean_schema(self) -> pa.Schema:
        """The clean readings."""
        return CLEAN_SCHEMA

    def clean(self, raw: Mapping[str, Any], partition: Any, timezone: str) -> CleanResult:
        """See :func:`clean`."""
        return clean(raw, partition, timezone)

    def build_demo_data(self, sources: Mapping[str, Any], replace: bool) -> DemoReport:
        """See :func:`build_demo_data`."""
        return build_demo_data(sources, replace)

    def embedded_server(self, source: str, host: str, port: int, rate_limit: float) -> Any:
        """This use case has no HTTP source."""
        raise ValueError(f"use case meters has no embedded server for source {source!r}")


USECASE = MetersUseCase()
