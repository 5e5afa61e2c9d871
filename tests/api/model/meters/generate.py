"""Write the API's test model of the test-only use case (tests/usecases/minimal): a tiny
hand-made version (run by hand, rarely).

    .venv/bin/python tests/api/model/meters/generate.py

The export has the stages, shapes and conventions the Spark job exports
(``headwater.model.spark_export``'s format: string indexers with ``handleInvalid='keep'``,
one-hot with ``dropLast``, assembler, scaler, logistic and linear heads sharing the feature
stages) over the use case's own features, with coefficients chosen by hand: the higher the
meter's number and the later in the day, the likelier an overload. The numbers are
illustrative, not trained. Platform tests that need a servable version use this one, so
they name no shipped use case.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = "meters"
VERSION = "20261201T000000Z-meter1"
CATEGORICAL = ("meter", "hour_of_day")
NUMERIC = ("weekend",)
FEATURES = (*CATEGORICAL, *NUMERIC)
LABELS = {"meter": ["m1", "m2", "m3"], "hour_of_day": [f"{h:02d}" for h in range(24)]}
# Per category slot (dropLast: the last label has no slot), on the classifier's margin.
EFFECTS = {
    "meter": [-1.5, 0.0],
    "hour_of_day": [round(-1.0 + 0.1 * h, 2) for h in range(23)],
}
WEEKEND_EFFECT, WEEKEND_SCALE = -0.4, (0.29, 0.45)  # mean, standard deviation of the raw value
LOAD_PER_MARGIN = 1.5  # the regression head: 6 kW + 1.5 kW per unit of the margin


def export_document() -> dict:
    """The version's export.json."""
    sizes = [len(LABELS[c]) + 1 for c in CATEGORICAL]  # Spark counts the 'keep' slot
    coefficients: list[float] = []
    for column, count in zip(CATEGORICAL, sizes, strict=True):
        coefficients.extend((EFFECTS[column] + [0.0] * count)[:count])
    mean = [0.0] * len(coefficients) + [WEEKEND_SCALE[0]]
    std = [1.0] * len(coefficients) + [WEEKEND_SCALE[1]]
    coefficients.append(WEEKEND_EFFECT)
    stages = [
        {
            "type": "StringIndexer",
            "inputCols": list(CATEGORICAL),
            "outputCols": [f"{c}_idx" for c in CATEGORICAL],
            "labels": [LABELS[c] for c in CATEGORICAL],
            "handleInvalid": "keep",
        },
        {
            "type": "OneHotEncoder",
            "inputCols": [f"{c}_idx" for c in CATEGORICAL],
            "outputCols": [f"{c}_ohe" for c in CATEGORICAL],
            "categorySizes": sizes,
            "dropLast": True,
            "handleInvalid": "keep",
        },
        {
            "type": "VectorAssembler",
            "inputCols": [*(f"{c}_ohe" for c in CATEGORICAL), *NUMERIC],
            "outputCol": "raw_features",
        },
        {
            "type": "StandardScaler",
            "inputCol": "raw_features",
            "outputCol": "features",
            "withMean": True,
            "withStd": True,
            "mean": mean,
            "std": std,
        },
    ]
    classifier = {
        "type": "LogisticRegression",
        "featuresCol": "features",
        "coefficients": coefficients,
        "intercept": -0.5,
        "threshold": 0.5,
    }
    regressor = {
        "type": "LinearRegression",
        "featuresCol": "features",
        "coefficients": [LOAD_PER_MARGIN * c for c in coefficients],
        "intercept": 6.0,
    }
    return {
        "format": "headwater.spark-pipeline",
        "format_version": 1,
        "metadata": {
            "model": NAME,
            "version": VERSION,
            "label": "overload",
            "target": "load_kw",
            "features": list(FEATURES),
            "categorical": list(CATEGORICAL),
            "numeric": list(NUMERIC),
            "threshold": 0.5,
            "trained_at": "2026-12-01T00:00:00+00:00",
        },
        "pipelines": {
            "classifier": {"inputs": list(FEATURES), "stages": [*stages, classifier]},
            "regressor": {"inputs": list(FEATURES), "stages": [*stages, regressor]},
        },
    }


def main() -> int:
    documents = {
        "export.json": export_document(),
        "lookups.json": {"meters": LABELS["meter"]},
        "metrics.json": {
            "model": NAME,
            "version": VERSION,
            "note": "hand-made test model: illustrative numbers",
            "holdout_from": "2013-02-20",
            "train_rows": 3600,
            "holdout": {"rows": 720, "auc_roc": 0.8, "log_loss": 0.4},
            "regression": {"rmse": 1.2, "mae": 0.9, "r2": 0.6},
            "baselines": {"base_rate": {"rows": 720, "auc_roc": 0.5}},
        },
        "lineage.json": {
            "model": NAME,
            "version": VERSION,
            "run_id": VERSION,
            "code_version": "test",
            "trained_at": "2026-12-01T00:00:00+00:00",
            "date_range": "2013-01-01..2013-03-01",
            "holdout_from": "2013-02-20",
            "inputs": {"clean/meters/readings/month=2013-02": "sha256:test"},
        },
    }
    for name, body in documents.items():
        (HERE / name).write_text(json.dumps(body, indent=1) + "\n")
    print(f"{NAME} test model {VERSION} written to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
