"""Write the API's bike-share test model: a tiny hand-made version (run by hand, rarely).

    .venv/bin/python tests/headwater/usecases/bikeshare/model/generate.py

The export has the stages, shapes and conventions the Spark job exports
(``headwater.model.spark_export``'s format: string indexers with ``handleInvalid='keep'``,
one-hot with ``dropLast``, assembler, scaler, logistic and linear heads sharing the
feature stages) over the use case's own feature names, with coefficients chosen by
hand: busy at the commuting hours of working days, quiet at night, less busy in rain.
The numbers are illustrative, not trained; Spark parity is tested on the flights model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from headwater.usecases.bikeshare.features import CATEGORICAL, FEATURES, NUMERIC, FeatureLookups

HERE = Path(__file__).resolve().parent
VERSION = "20261201T000000Z-bike01"
SITUATIONS = ["Clear", "Mist", "Light Rain", "Heavy Rain"]
LABELS = {
    "hour": [f"{h:02d}" for h in range(24)],
    "weekday": [str(d) for d in range(7)],
    "weather_situation": SITUATIONS,
    "day_hour": [f"{day}-{h:02d}" for day in ("work", "off") for h in range(24)],
}
# Per category slot (dropLast: the last label has no slot), on the classifier's margin.
HOUR_EFFECT = [-3, -3.5, -4, -4, -4, -3, -1.5, 0.8, 2.2, 0.8, -0.2, 0.2, 0.6, 0.6, 0.4, 0.6,
               1.4, 2.6, 2.4, 1.2, 0.2, -0.6, -1.2]  # fmt: skip
WEEKDAY_EFFECT = [0.1, 0.15, 0.15, 0.15, 0.2, 0.0]
SITUATION_EFFECT = [0.3, 0.0, -1.2]
NUMERIC_EFFECT = {
    "month_sin": -0.2,
    "month_cos": -0.4,
    "holiday": -0.3,
    "workingday": 0.2,
    "years_since_start": 0.5,
    "temp_c": 0.6,
    "feels_like_c": 0.2,
    "humidity_pct": -0.3,
    "wind_speed_kmh": -0.1,
    "weather_defaulted": 0.0,
}
NUMERIC_SCALE = {  # mean, standard deviation of the raw value
    "month_sin": (0.0, 0.7),
    "month_cos": (0.0, 0.7),
    "holiday": (0.03, 0.17),
    "workingday": (0.68, 0.47),
    "years_since_start": (1.0, 0.58),
    "temp_c": (15.4, 9.0),
    "feels_like_c": (15.3, 10.5),
    "humidity_pct": (62.7, 19.3),
    "wind_speed_kmh": (12.7, 8.2),
    "weather_defaulted": (0.05, 0.22),
}
RENTALS_PER_MARGIN = 85.0  # the regression head: 190 rentals + 85 per unit of the margin


def export_document() -> dict:
    """The version's export.json."""
    sizes = [len(LABELS[c]) + 1 for c in CATEGORICAL]  # Spark counts the 'keep' slot
    slots = sizes  # the scorer's block per column: labels + keep slot, as Spark's one-hot
    effects = [HOUR_EFFECT, WEEKDAY_EFFECT + [0.0], SITUATION_EFFECT + [0.0], []]
    coefficients: list[float] = []
    for block, count in zip(effects, slots, strict=True):
        coefficients.extend((block + [0.0] * count)[:count])
    mean = [0.0] * len(coefficients)
    std = [1.0] * len(coefficients)
    for name in NUMERIC:
        coefficients.append(NUMERIC_EFFECT[name])
        mean.append(NUMERIC_SCALE[name][0])
        std.append(NUMERIC_SCALE[name][1])
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
        "intercept": -1.3,
        "threshold": 0.5,
    }
    regressor = {
        "type": "LinearRegression",
        "featuresCol": "features",
        "coefficients": [RENTALS_PER_MARGIN * c for c in coefficients],
        "intercept": 190.0,
    }
    return {
        "format": "headwater.spark-pipeline",
        "format_version": 1,
        "metadata": {
            "model": "bikeshare",
            "version": VERSION,
            "label": "high_demand",
            "target": "rentals",
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


def lookups_document() -> dict:
    """The version's lookups.json: typical weather per month (rounded DC climate)."""
    temps = [2, 4, 9, 15, 20, 25, 27, 26, 22, 16, 10, 4]
    weather = {
        f"{m:02d}": {
            "weather_situation": "Clear",
            "temp_c": float(t),
            "feels_like_c": float(t - 1),
            "humidity_pct": 60.0,
            "wind_speed_kmh": 12.0,
        }
        for m, t in enumerate(temps, start=1)
    }
    lookups = FeatureLookups(
        start_year=2011,
        weather=weather,
        default_weather={
            "weather_situation": "Clear",
            "temp_c": 15.0,
            "feels_like_c": 14.0,
            "humidity_pct": 60.0,
            "wind_speed_kmh": 12.0,
        },
        weather_situations=SITUATIONS,
    )
    return lookups.to_dict()


def main() -> int:
    documents = {
        "export.json": export_document(),
        "lookups.json": lookups_document(),
        "metrics.json": {
            "model": "bikeshare",
            "version": VERSION,
            "note": "hand-made test model: illustrative numbers",
            "holdout_from": "2012-11-01",
            "train_rows": 15000,
            "holdout": {"rows": 1400, "auc_roc": 0.9, "log_loss": 0.3},
            "regression": {"rmse": 90.0, "mae": 60.0, "r2": 0.7},
            "baselines": {"base_rate": {"rows": 1400, "auc_roc": 0.5}},
        },
        "lineage.json": {
            "model": "bikeshare",
            "version": VERSION,
            "run_id": VERSION,
            "code_version": "test",
            "trained_at": "2026-12-01T00:00:00+00:00",
            "date_range": "2011-01-01..2012-12-31",
            "holdout_from": "2012-11-01",
            "inputs": {"clean/bikeshare/rentals/month=2012-12": "sha256:test"},
        },
    }
    for name, body in documents.items():
        (HERE / name).write_text(json.dumps(body, indent=1) + "\n")
    print(f"bike-share test model {VERSION} written to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
