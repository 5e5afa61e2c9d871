"""The options of one training run: one typed record, from the scheduler to the Spark job.

The scheduler builds it (:func:`headwater.model.runners.training_options`), the runner passes
it to the job as JSON (``--options-json``), and the job reads it back with
:meth:`TrainOptions.from_json`: every field is named here and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from headwater.core.config import GateConfig

#: The fields held as dates (ISO strings in JSON).
_DATES = ("start", "end", "holdout_from")


@dataclass(frozen=True)
class TrainOptions:
    """One training run: which use case, where, which range, which version, and how."""

    #: The use case's registry name.
    usecase: str
    #: The lake's URI (``file://`` or ``s3://``).
    lake: str
    #: The new model version's id.
    version: str
    #: First and last day of the range trained and held out on (inclusive).
    start: date
    end: date
    #: The lake's partition grain (``day`` or ``month``).
    grain: str = "month"
    #: First day of the holdout (default: the last sixth of the range).
    holdout_from: date | None = None
    #: The production version evaluated on the same holdout, if any.
    production_version: str | None = None
    run_id: str = "adhoc"
    code_version: str = "unknown"
    #: What identifies this training (:func:`headwater.model.runners.training_key`); in lineage.
    training_key: str = ""
    #: The configuration the training depends on (recorded in its lineage).
    config: Mapping[str, Any] = field(default_factory=dict)
    reg_param: float = 0.001
    #: Spark's ``spark.sql.shuffle.partitions``.
    shuffle_partitions: int = 8
    #: The module holding the use case when it is not one of the library's (by name).
    usecase_module: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def gate(self) -> GateConfig:
        """The use case's gate, as recorded in ``config`` (GateConfig's defaults where unset)."""
        return GateConfig.model_validate(dict(self.config).get("gate") or {})

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-able values (dates as ISO strings)."""
        out = asdict(self)
        out["config"] = dict(self.config)
        for name in _DATES:
            out[name] = out[name].isoformat() if out[name] is not None else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainOptions:
        """The options from :meth:`to_dict`'s form; an unknown field is an error."""
        values = dict(data)
        for name in _DATES:
            if values.get(name) is not None:
                values[name] = date.fromisoformat(str(values[name]))
        return cls(**values)

    def to_json(self) -> str:
        """The options as one JSON document (what the runner passes to the job)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainOptions:
        """The options the runner passed (:meth:`to_json`)."""
        return cls.from_dict(json.loads(text))
