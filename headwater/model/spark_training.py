"""The generic Spark ML job: train, evaluate and export one use case's two models.

Everything specific to a question comes from the use case's :class:`TrainingSpec`: the
clean dataset and its date column, the reference snapshots, the label and the regression
target, the features (built on the executors by ``spec.features_frame`` through
``mapInPandas``, the same definition the API runs per request), the lookups and the
baselines. The job reads the clean partitions named by their manifests, adds the use
case's windows over the whole range (lags, leads, rolling aggregates across partitions),
fits a logistic regression (the label) and a linear regression (the target) on shared
feature stages, evaluates both on a time-based holdout against the baselines, checks that
the portable export scores as Spark does, and writes one new model version (the paths come from
:mod:`headwater.core.layout`), ``_SUCCESS`` last. Nothing that grows with the data is collected.

The entrypoint (``emr_jobs/train.py``) parses the command line, builds the SparkSession
and calls :func:`train`; every transform here is ``DataFrame -> DataFrame`` or a small
reduction, so tests call them directly on a local session.
"""

from __future__ import annotations

import importlib
import json
import math
import platform
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.core import layout
from headwater.core.partitions import partitions_between
from headwater.core.progress import ProgressEvent
from headwater.core.ranges import default_holdout, splits
from headwater.core.records import (
    DateRange,
    HoldoutWindow,
    Lineage,
    ProductionScore,
    QuantityNames,
    TrainingMetrics,
)
from headwater.data.lake import Lake, LakeError, open_lake, repair_command
from headwater.data.pipeline import latest_snapshot
from headwater.model.comparison import (
    COMPARISON_BINS,
    LOGIT_RANGE,
    METHOD,
    ComparisonOutcome,
    ProductionComparison,
    TooFewBlocks,
    block_count,
    block_width,
    comparison_numbers,
    histogram_array,
    paired_bootstrap,
)
from headwater.model.evaluation import (
    EPSILON,
    ScoreBin,
    calibration_table,
    constant_metrics,
    exact_metrics,
    mean_target_baseline,
    roc_curve,
    summary,
)
from headwater.model.options import TrainOptions as TrainOptions  # the job's one argument
from headwater.model.report import render_report
from headwater.model.spark_export import export_document, export_pipeline
from headwater.monitoring.reference import (
    SAMPLE_ROWS,
    model_reference,
    ranges_from_row,
    spark_range_expressions,
)
from headwater.serving.scoring import fold, load_pipelines

if TYPE_CHECKING:
    from headwater.core.usecase import TrainingSpec, UseCase, Window

#: The holdout rows scored by both Spark and the portable export.
PARITY_SAMPLE_ROWS = 2000
#: The largest difference allowed between the export's scores and Spark's.
PARITY_TOLERANCE = 1e-9
#: Equal-width score bins of the holdout histogram (calibration, ROC plot, exact means).
HISTOGRAM_BINS = 200
#: At most this many distinct scores are collected for an exact baseline evaluation.
MAX_EXACT_SCORES = 10_000
#: Baseline cells are smoothed towards the base rate as if they held this many more rows.
BASELINE_PRIOR = 20.0
#: The label column of the feature table (the use case's label, as a double).
LABEL = "label"
_T0 = time.perf_counter()


def progress(step: str, seconds: float | None = None, **fields: Any) -> ProgressEvent:
    """One progress record on stderr (the step log) as a JSON line: step, seconds, figures."""
    event = ProgressEvent(
        step, round(time.perf_counter() - _T0, 3), None if seconds is None else round(seconds, 3),
        {k: v if isinstance(v, int | float | str | bool) or v is None else str(v)
         for k, v in fields.items()},
    )  # fmt: skip
    print(event.to_line(), file=sys.stderr, flush=True)
    return event


# -- inputs ----------------------------------------------------------------------------------
def spark_path(lake: Lake, *parts: str) -> str:
    """The URI Spark reads or writes ``parts`` of the lake at."""
    return f"file://{lake.path(*parts)}" if lake.is_local else lake.uri_of(*parts)


def verify_inputs(
    spark: Any, files: Mapping[str, tuple[str, str]], run: tuple[date, date] | None = None
) -> dict[str, str]:
    """Hash every input file on the executors and check it against its manifest.

    ``files`` maps each input (``zone/dataset/partition``) to its file's Spark URI and
    the checksum its manifest records. Spark reads the files through the same
    filesystem that then reads the Parquet (``file://`` locally, EMRFS on EMR) and
    computes each SHA-256 on an executor (``binaryFile`` + ``sha2``): only one short
    row per file reaches the driver. Returns the checksum of what was read, per input;
    raises :class:`~headwater.data.lake.LakeError` naming every input whose file does not
    match (or is missing), with both checksums and the command that republishes it
    (``run``: the training's dates, for a snapshot).
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    if not files:
        return {}
    by_file = {_file_key(uri): name for name, (uri, _) in files.items()}
    try:
        rows = (
            spark.read.format("binaryFile")
            .load([uri for uri, _ in files.values()])
            .select("path", F.sha2("content", 256).alias("sha256"))
            .collect()
        )
    except AnalysisException as exc:  # a file its manifest names is gone
        raise LakeError(f"training input missing: {exc}") from None
    read = {by_file[_file_key(r.path)]: f"sha256:{r.sha256}" for r in rows}
    broken = []
    for name, (uri, expected) in sorted(files.items()):
        if read.get(name) == expected:
            continue
        zone, _, rest = name.partition("/")
        dataset, _, key = rest.rpartition("/")
        command = repair_command(zone, dataset, key, run)
        then = "" if key.startswith(layout.SNAPSHOT_PREFIX) else ", then run again"
        broken.append(
            f"{name}: manifest {expected}, data {read.get(name, 'missing')} ({uri}); "
            f"republish it with `{command}`{then}"
        )
    if broken:
        raise LakeError(
            "training input does not match its manifest (corrupt or replaced; a plain re-run "
            f"skips a published partition): {'; '.join(broken)}"
        )
    return {name: read[name] for name in files}


def _file_key(uri: str) -> str:
    # Spark names a file its own way (file:/x for file:///x): compare partition/file only,
    # which is unique (every data file's name carries its run and a random suffix).
    return "/".join(uri.rstrip("/").rsplit("/", 2)[-2:])


#: Each reference's latest snapshot: its input name, Spark URI and recorded checksum.
SnapshotFiles = dict[str, tuple[str, str, str]]


def input_files(
    lake: Lake, usecase: str, spec: TrainingSpec, start: date, end: date, grain: str
) -> tuple[dict[str, tuple[str, str]], SnapshotFiles]:
    """The files a training reads, from their manifests: clean partitions, latest snapshots.

    Returns ``(clean, snapshots)``: each clean partition's input name (``zone/dataset/key``)
    to its file's Spark URI and recorded checksum, and each reference to its latest
    snapshot as of ``end`` (input name, URI, checksum). Only published partitions count.
    """
    dataset = layout.dataset(usecase, spec.dataset)
    clean: dict[str, tuple[str, str]] = {}
    for part in partitions_between(start, end, grain):  # type: ignore[arg-type]
        manifest = lake.manifest(layout.CLEAN, dataset, part.key)
        if manifest is None:
            raise LakeError(
                f"clean partition {part.key} of {dataset} is not published: run the pipeline first"
            )
        clean[f"{layout.CLEAN}/{dataset}/{part.key}"] = (
            spark_path(lake, layout.CLEAN, dataset, part.key, manifest.file),
            manifest.checksum,
        )
    snapshots: SnapshotFiles = {}
    for name in spec.references:
        snapshot = latest_snapshot(lake, usecase, name, end)
        reference = layout.dataset(usecase, name)
        if snapshot is None:
            raise LakeError(
                f"no snapshot of {reference} as of {end} in the lake: run the pipeline (it "
                "extracts it)"
            )
        manifest = lake.manifest(layout.RAW, reference, snapshot)
        snapshots[name] = (
            f"{layout.RAW}/{reference}/{snapshot}",
            spark_path(lake, layout.RAW, reference, snapshot, manifest.file),
            manifest.checksum,
        )
    return clean, snapshots


def all_files(
    clean: Mapping[str, tuple[str, str]], snapshots: SnapshotFiles
) -> dict[str, tuple[str, str]]:
    """Every input's Spark URI and checksum, by input name (what :func:`verify_inputs` takes)."""
    return {**clean, **{name: (uri, checksum) for name, uri, checksum in snapshots.values()}}


def read_inputs(
    spark: Any, lake: Lake, usecase: str, spec: TrainingSpec, start: date, end: date, grain: str
) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """The clean partitions covering ``start..end`` and each reference's latest snapshot.

    The partitions are read whole (:func:`in_range` keeps the range's rows); the snapshot
    is the latest as of ``end``.

    Returns ``(clean, references, inputs)``: a DataFrame, one DataFrame per reference,
    and the checksum of every partition read (the lineage). Only published partitions
    are read, through their manifests, and only once every file is verified against
    its manifest's checksum (:func:`verify_inputs`).
    """
    clean, snapshots = input_files(lake, usecase, spec, start, end, grain)
    inputs = verify_inputs(spark, all_files(clean, snapshots), (start, end))
    references = {name: spark.read.parquet(uri) for name, (_, uri, _) in snapshots.items()}
    return spark.read.parquet(*(uri for uri, _ in clean.values())), references, inputs


# -- transforms: DataFrame -> DataFrame ------------------------------------------------------
def in_range(frame: Any, date_column: str, start: date, end: date) -> Any:
    """The rows dated ``start..end`` (inclusive) on ``date_column``, filtered on the executors.

    A partition is a whole month (or day) of the use case's time zone, and the clean date
    column holds that zone's calendar date, so a run shorter than its partitions reads rows
    of days outside its range: they are neither trained on nor held out.
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    return frame.where(F.col(date_column).between(F.lit(start), F.lit(end)))


def _micros(delta: Any) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class WindowFrame:
    """The rows a :class:`~headwater.core.usecase.Window` reads, relative to each row: the one
    definition of a window's frame, from which the Spark columns (:func:`with_windows`, training)
    and the pandas ones (:func:`headwater.monitoring.windows.with_windows`, monitoring) derive.

    The rows of the same ``keys``, ordered by ``order``; ``start`` and ``end`` (both inclusive)
    are microseconds from the row's time when ``by_time``, else rows from the row's position.
    """

    by_time: bool
    start: int
    end: int
    #: ``value`` (lag / lead: the one row's value), ``mean``, ``sum`` or ``count`` (non-null
    #: values; an empty frame's sum and count are 0, its mean null).
    aggregate: str
    #: Rolling windows: the least number of rows the frame must reach back (by rows), or null
    #: when the frame starts before the range's first instant (by time). Lag / lead: null when
    #: the row the frame names is not there (past an edge, or a gap).
    rolling: bool


def window_frame(w: Window) -> WindowFrame:
    """The frame of ``w`` (see :class:`WindowFrame`)."""
    sign = -1 if w.kind == "lag" else 1
    if w.kind in ("lag", "lead"):
        offset = sign * (w.rows if w.rows is not None else _micros(w.span))
        return WindowFrame(w.rows is None, offset, offset, "value", rolling=False)
    aggregate = w.kind.removeprefix("rolling_")
    if w.span is not None:
        # [t - span, t - gap): the row itself and rows at the same instant are never in
        return WindowFrame(True, -_micros(w.span), -_micros(w.gap) - 1, aggregate, rolling=True)
    return WindowFrame(False, -int(w.rows or 0), -1, aggregate, rolling=True)


def with_windows(clean: Any, windows: Sequence[Window]) -> Any:
    """Add each window's column to the clean rows: Spark window functions over the whole frame.

    The frame is every clean row of the range (all its partitions), so a lag or a lead
    reaches across partition boundaries. Rows whose window reaches outside the frame (a
    lead past its last instant, a lag or a rolling span before its first, fewer rows than
    a rolling ``rows`` count) get null (:class:`~headwater.core.usecase.Window`); each
    window's rows are :func:`window_frame`'s.
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import Window as SparkWindow
    from pyspark.sql import functions as F

    if not windows:
        return clean
    t = "__window_micros"
    frame = clean
    for order in dict.fromkeys(w.order for w in windows):
        frame = frame.withColumn(f"{t}_{order}", F.unix_micros(F.col(order).cast("timestamp")))
    spans = dict.fromkeys(w.order for w in windows if window_frame(w).rolling and w.span)
    # the range's first instant, per time column: a rolling span starting before it is partial
    bounds = frame.agg(*(F.min(f"{t}_{o}").alias(o) for o in spans)).first() if spans else {}
    for w in windows:
        micros, rows = f"{t}_{w.order}", window_frame(w)
        by_time = SparkWindow.partitionBy(*w.keys).orderBy(micros)
        value = F.col(w.column)
        if not rows.rolling and not rows.by_time:
            shift = F.lag if rows.start < 0 else F.lead
            column = shift(value, abs(rows.start)).over(by_time)
        elif not rows.rolling:
            # the row exactly ``span`` away (null when there is none: past an edge, or a gap)
            column = F.first(value).over(by_time.rangeBetween(rows.start, rows.end))
        else:
            if rows.by_time:
                frame_of = by_time.rangeBetween(rows.start, rows.end)
                complete = F.col(micros) + F.lit(rows.start) >= F.lit(bounds[w.order])
            else:
                frame_of = by_time.rowsBetween(rows.start, rows.end)
                complete = F.count(F.lit(1)).over(frame_of) >= F.lit(-rows.start)
            number = value.cast("double")
            aggregate = {"mean": F.avg(number), "sum": F.sum(number), "count": F.count(number)}[
                rows.aggregate
            ].over(frame_of)
            if rows.aggregate != "mean":  # an empty window sums and counts to zero
                aggregate = F.coalesce(aggregate.cast("double"), F.lit(0.0))
            column = F.when(complete, aggregate)
        frame = frame.withColumn(w.name, column)
    return frame.drop(*(c for c in frame.columns if c.startswith(t)))


def baseline_input(column: str) -> str:
    """The feature table's copy of the clean column a regression baseline reads."""
    return f"baseline__{column}"


def feature_table(clean: Any, spec: TrainingSpec, lookups: Any) -> Any:
    """Add the model features to clean rows on the executors (pandas batches via Arrow).

    Returns a DataFrame of the features (categorical as strings, numeric as doubles),
    the date column, ``label`` (the use case's label as a double) and the target as a
    double. Every row is kept; :func:`labelled` drops those without a label. Windows the
    rows do not carry yet (the job's windows step adds them over the whole range) are
    computed over these rows, so a frame read straight from the clean zone has them too.
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import types as T

    clean = with_windows(clean, [w for w in spec.windows if w.name not in clean.columns])
    date_column, label, target = spec.date_column, spec.label.column, spec.target.column
    fields = [T.StructField(name, T.StringType()) for name in spec.categorical]
    fields += [T.StructField(name, T.DoubleType()) for name in spec.numeric]
    fields += [
        T.StructField(date_column, T.DateType()),
        T.StructField(LABEL, T.DoubleType()),
        T.StructField(target, T.DoubleType()),
    ]
    # Baselines may read clean columns that are not features: carried along as they are. A
    # regression baseline always reads its clean column (never a feature's filled value).
    taken = {*spec.features, date_column, LABEL, target}
    carried = {c: c for b in spec.baselines for c in b.columns if c not in taken}
    carried |= {baseline_input(b.column): b.column for b in spec.regression_baselines}
    fields += [T.StructField(name, clean.schema[c].dataType) for name, c in carried.items()]
    schema = T.StructType(fields)
    columns = list(
        dict.fromkeys((*spec.input_columns, *carried.values(), date_column, label, target))
    )
    output = [*spec.features, date_column, LABEL, target, *carried]
    features_frame = spec.features_frame

    def batches(frames: Any) -> Any:
        for frame in frames:
            out = features_frame(frame, lookups)
            out[date_column] = frame[date_column]
            out[LABEL] = frame[label].astype("float64")
            out[target] = frame[target].astype("float64")
            for name, column in carried.items():
                out[name] = frame[column]
            yield out[output]

    return clean.select(*columns).mapInPandas(batches, schema)


def labelled(features: Any) -> Any:
    """The rows with a label (the others are neither trained on nor held out)."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    return features.where(F.col(LABEL).isNotNull() & ~F.isnan(LABEL))


def split_by_time(features: Any, date_column: str, holdout_from: date) -> tuple[Any, Any]:
    """Train on labelled rows before ``holdout_from``, hold out the rest (never a random split)."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    rows, cutoff = labelled(features), F.lit(holdout_from)
    return rows.where(F.col(date_column) < cutoff), rows.where(F.col(date_column) >= cutoff)


def with_probability(predictions: Any, column: str = "probability") -> Any:
    """Add ``p``: the probability of the positive class as a double column."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    return predictions.withColumn("p", vector_to_array(F.col(column))[1])


def feature_stages(categorical: Sequence[str], numeric: Sequence[str]) -> Any:
    """Index, one-hot encode, assemble and standardise: the stages both models share."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler

    index = [f"{c}_idx" for c in categorical]
    onehot = [f"{c}_ohe" for c in categorical]
    return Pipeline(
        stages=[
            StringIndexer(inputCols=list(categorical), outputCols=index, handleInvalid="keep"),
            OneHotEncoder(inputCols=index, outputCols=onehot, handleInvalid="keep", dropLast=True),
            VectorAssembler(
                inputCols=onehot + list(numeric), outputCol="raw_features", handleInvalid="keep"
            ),
            StandardScaler(
                inputCol="raw_features", outputCol="features", withMean=False, withStd=True
            ),
        ]
    )


def fit_models(
    train: Any, categorical: Sequence[str], numeric: Sequence[str], reg_param: float, target: str
) -> tuple[Any, Any]:
    """Fit the shared feature stages once, then both heads; return two PipelineModels.

    The classifier (logistic regression on the label) and the regressor (linear
    regression on ``target``, where known) share the fitted feature stages, so they
    are exported and served from one definition.
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.ml import PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.regression import LinearRegression
    from pyspark.sql import functions as F

    features = feature_stages(categorical, numeric).fit(train)
    # Not cached here: each estimator then persists its own deserialised instances,
    # which its iterations read far faster than a cached DataFrame of vectors.
    vectors = features.transform(train).select("features", LABEL, target)
    logistic = LogisticRegression(
        featuresCol="features", labelCol=LABEL, regParam=reg_param, maxIter=15
    ).fit(vectors)
    linear = LinearRegression(
        featuresCol="features", labelCol=target, regParam=reg_param, solver="normal"
    ).fit(vectors.where(F.col(target).isNotNull() & ~F.isnan(target)))
    return (
        PipelineModel(stages=[*features.stages, logistic]),
        PipelineModel(stages=[*features.stages, linear]),
    )


# -- evaluation ------------------------------------------------------------------------------
def score_histogram(scored: Any, score: str = "p", bins: int = HISTOGRAM_BINS) -> list[ScoreBin]:
    """Reduce a scored holdout to ``bins`` equal-width score bins, in one Spark job.

    Each bin carries its count, positives and the sums of the score, the log loss, the
    squared error and the correct decisions at 0.5, so the holdout's means are exact.
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    s, y = F.col(score), F.col(LABEL)
    clipped = F.least(F.greatest(s, F.lit(EPSILON)), F.lit(1 - EPSILON))
    bucket = F.least(F.floor(s * bins), F.lit(bins - 1)).cast("int")
    rows = (
        scored.groupBy(bucket.alias("b"))
        .agg(
            F.count("*").alias("n"),
            F.sum(y).alias("pos"),
            F.sum(s).alias("s"),
            F.sum(-(y * F.log(clipped) + (1 - y) * F.log(1 - clipped))).alias("ll"),
            F.sum((s - y) ** 2).alias("se"),
            F.sum(((s > 0.5).cast("double") == y).cast("double")).alias("ok"),
        )
        .collect()
    )
    return [
        ScoreBin((r.b + 0.5) / bins, float(r.n), float(r.pos), r.s, r.ll, r.se, r.ok) for r in rows
    ]


def exact_histogram(scored: Any, score: str = "p") -> list[ScoreBin]:
    """One bin per distinct score: for baselines, whose scores take few values."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    rows = (
        scored.groupBy(F.col(score).alias("s"))
        .agg(F.count("*").alias("n"), F.sum(LABEL).alias("pos"))
        .limit(MAX_EXACT_SCORES + 1)
        .collect()
    )
    if len(rows) > MAX_EXACT_SCORES:
        raise ValueError(f"more than {MAX_EXACT_SCORES} distinct scores: not a baseline")
    return [ScoreBin.exact(float(r.s), float(r.n), float(r.pos)) for r in rows]


def classification_metrics(
    scored: Any, score: str = "p", histogram: Sequence[ScoreBin] | None = None
) -> dict[str, float]:
    """AUC-ROC, AUC-PR, log loss, Brier score, accuracy and base rate of a scored holdout.

    The means come from the bounded histogram (computed here unless given); both AUCs
    are Spark's exact ones.
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    if histogram is None:
        histogram = score_histogram(scored, score)
    # numBins=0: the exact curves. The default down-sampling to 1,000 bins depends on how the
    # scores are partitioned, so the same model scored twice would get two different AUCs and
    # the gate would compare evaluation noise.
    evaluator = BinaryClassificationEvaluator(rawPredictionCol=score, labelCol=LABEL, numBins=0)
    return {
        **summary(histogram),
        "auc_roc": evaluator.evaluate(scored, {evaluator.metricName: "areaUnderROC"}),
        "auc_pr": evaluator.evaluate(scored, {evaluator.metricName: "areaUnderPR"}),
    }


def holdout_window(holdout: Any, date_column: str, start: date, end: date) -> HoldoutWindow:
    """The holdout the gate compares on: its dates, rows and days with rows (one Spark job)."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    row = holdout.agg(
        F.count("*").alias("rows"), F.countDistinct(date_column).alias("days")
    ).first()
    return HoldoutWindow(start, end, int(row.rows), int(row.days))


def block_histograms(
    scored: Any, date_column: str, first_day: date, days: int, score: str = "p"
) -> Any:
    """Reduce a scored holdout to one score histogram per block of days (a numpy array).

    Returns an array ``(blocks, COMPARISON_BINS, fields)`` (:mod:`headwater.model.comparison`):
    at most ``MAX_BLOCKS x COMPARISON_BINS`` small rows are collected, whatever the rows.
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    bins, width = COMPARISON_BINS, block_width(days)
    s, y = F.col(score), F.col(LABEL)
    clipped = F.least(F.greatest(s, F.lit(EPSILON)), F.lit(1 - EPSILON))
    day = F.datediff(F.col(date_column), F.lit(first_day))
    logit_clip = F.least(F.greatest(s, F.lit(1e-300)), F.lit(1.0 - 1e-16))
    rows = (
        scored.groupBy(
            F.floor(day / F.lit(width)).cast("int").alias("block"),
            # comparison.score_bins: equal-width in log-odds (rare positives get many bins)
            F.least(
                F.greatest(
                    F.floor(
                        (F.log(logit_clip) - F.log(1 - logit_clip) + LOGIT_RANGE)
                        / (2 * LOGIT_RANGE)
                        * bins
                    ),
                    F.lit(0),
                ),
                F.lit(bins - 1),
            )
            .cast("int")
            .alias("bin"),
        )
        .agg(
            F.count("*").alias("count"),
            F.sum(y).alias("positives"),
            F.sum(s).alias("score_sum"),
            F.sum(-(y * F.log(clipped) + (1 - y) * F.log(1 - clipped))).alias("log_loss_sum"),
            F.sum((s - y) ** 2).alias("squared_error_sum"),
            F.sum(((s > 0.5).cast("double") == y).cast("double")).alias("correct_sum"),
        )
        .collect()
    )
    return histogram_array([r.asDict() for r in rows], block_count(days), bins)


def score_production(run: TrainingRun, version: str) -> Any:
    """The holdout scored by production ``version`` as the API serves it (cached, ``p``).

    Production's own lookups (its ``lookups.json``, loaded by the use case's
    ``training.load_lookups`` as the API loads them) build its features from the holdout's
    clean rows, and its own Spark classifier scores them: the candidate's lookups would
    make "production" a model the API does not answer with. The rows are the candidate's
    holdout rows (the same clean rows, labelled, from the holdout's first day).
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F

    parts = layout.model_parts(run.usecase.name, version)
    lookups = run.spec.load_lookups(json.loads(run.lake.read_bytes(*parts, layout.LOOKUPS)))
    model = PipelineModel.load(spark_path(run.lake, *parts, layout.SPARK, layout.CLASSIFIER))
    clean = run.clean.where(F.col(run.spec.date_column) >= F.lit(run.holdout_from))
    features = labelled(feature_table(clean, run.spec, lookups))
    return with_probability(model.transform(features)).cache()


def interval_comparison(
    candidate: Any,
    production: Any,
    date_column: str,
    window: Mapping[str, Any],
    points: Mapping[str, float],
    confidence: float,
    metric: str = "auc_roc",
) -> dict[str, Any]:
    """Intervals on (candidate - production) of each metric, both scored on the same holdout.

    ``candidate`` and ``production`` are the scored holdout (``p``, ``label``, the date);
    ``points`` the exact point differences; ``metric`` the gate's (its daily differences set
    the blocks). A paired block bootstrap over days (:mod:`headwater.model.comparison`: the
    choice and its assumption are documented there). A holdout of too few days gets no
    interval: ``no_interval`` says why; a metric the bootstrap refused is in ``refused``
    with its reason (the gate refuses for either).
    """
    first = date.fromisoformat(window["from"])
    days = (date.fromisoformat(window["to"]) - first).days + 1
    new = block_histograms(candidate, date_column, first, days)
    old = block_histograms(production, date_column, first, days)
    occupied = (new[..., 0].sum(-1) + old[..., 0].sum(-1)) > 0  # days without rows carry nothing
    out: dict[str, Any] = {
        "method": METHOD,
        "confidence": confidence,
        "blocks": int(occupied.sum()),
    }
    try:
        bootstrap = paired_bootstrap(
            new[occupied], old[occupied], confidence=confidence, points=points, metric=metric
        )
    except TooFewBlocks as exc:
        return {**out, "intervals": {}, "refused": {}, "no_interval": str(exc)}
    return {**out, **comparison_numbers(bootstrap)}


def compare_with_production(run: TrainingRun, version: str) -> ProductionComparison:
    """Score the holdout with production ``version`` and put intervals on the gains.

    Returns what happened (:class:`headwater.model.comparison.ProductionComparison`):
    compared, production failed to score the holdout (a model of another feature set, its
    lookups missing), or the comparison itself failed once production had scored. The
    last is the job's own failure, recorded as such: the gate refuses it and a rerun
    trains again rather than reusing the version.
    """
    try:
        scored = score_production(run, version)
        metrics = classification_metrics(scored)
    # Any error here is production's: Spark raises whatever the model's stages or its
    # lookups raise, late, from the first action.
    except Exception as exc:
        return ProductionComparison(
            version, ComparisonOutcome.PRODUCTION_FAILED, error=f"{type(exc).__name__}: {exc}"
        )
    points = {
        key: run.holdout_metrics[key] - metrics[key]
        for key in run.holdout_metrics.keys() & metrics.keys()
    }
    gate = run.options.gate
    try:
        numbers = interval_comparison(
            run.scored,
            scored,
            run.spec.date_column,
            run.metrics.holdout_window.to_dict() if run.metrics.holdout_window else {},
            points,
            gate.confidence,
            gate.metric,
        )
    # Production scored: whatever fails now is the comparison's own failure, not production's.
    except Exception as exc:
        return ProductionComparison(
            version,
            ComparisonOutcome.COMPARISON_FAILED,
            metrics,
            error=f"{type(exc).__name__}: {exc}",
        )
    finally:
        scored.unpersist()
    return ProductionComparison(version, ComparisonOutcome.COMPARED, metrics, numbers)


def regression_metrics(scored: Any, target: str) -> dict[str, float]:
    """RMSE, MAE and R² of a scored holdout, in one pass over it."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    err = F.col("prediction") - F.col(target)
    row = scored.agg(
        F.count("*").alias("n"),
        F.avg(err * err).alias("mse"),
        F.avg(F.abs(err)).alias("mae"),
        F.var_pop(target).alias("variance"),
    ).first()
    r2 = 1.0 - row.mse / row.variance if row.variance else float("nan")
    return {"rmse": math.sqrt(row.mse), "mae": float(row.mae), "r2": r2}


def baselines(train: Any, holdout: Any, spec: TrainingSpec) -> dict[str, dict[str, float]]:
    """The use case's naive baselines on the same holdout, and the mean-target regression one.

    A baseline without columns is the base rate (a constant); one with columns scores
    each row by its cell's training rate, smoothed towards the base rate
    (:data:`BASELINE_PRIOR`), unseen cells taking the base rate. Cells are bounded, so
    each has few distinct scores and its metrics are exact. A regression baseline predicts
    the target with its column as it is (null: the training mean target; counted).
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    target = spec.target.column
    means = train.agg(F.avg(LABEL).alias("rate"), F.avg(target).alias("mean")).first()
    base_rate, mean_target = float(means.rate), float(means.mean or 0.0)
    err = F.col(target) - F.lit(mean_target)
    totals = holdout.agg(
        F.count("*").alias("n"),
        F.sum(LABEL).alias("pos"),
        F.sqrt(F.avg(err * err)).alias("rmse"),
        F.avg(F.abs(err)).alias("mae"),
    ).first()
    out: dict[str, dict[str, float]] = {}
    for baseline in spec.baselines:
        columns = list(baseline.columns)
        if not columns:
            out[baseline.name] = constant_metrics(base_rate, float(totals.n), float(totals.pos))
            continue
        prior = BASELINE_PRIOR
        cells = train.groupBy(*columns).agg(
            ((F.sum(LABEL) + prior * base_rate) / (F.count("*") + prior)).alias("cell_rate")
        )
        by_cell = holdout.join(F.broadcast(cells), columns, "left").withColumn(
            "p", F.coalesce(F.col("cell_rate"), F.lit(base_rate))
        )
        out[baseline.name] = exact_metrics(exact_histogram(by_cell))
    out[mean_target_baseline(target)] = {
        "rmse": float(totals.rmse or 0.0),
        "mae": float(totals.mae or 0.0),
    }
    known = holdout.where(F.col(target).isNotNull() & ~F.isnan(target))
    for regression in spec.regression_baselines:
        value = F.col(baseline_input(regression.column)).cast("double")
        missing = value.isNull() | F.isnan(value)
        guess = F.when(missing, F.lit(mean_target)).otherwise(value) - F.col(target)
        row = known.agg(
            F.sqrt(F.avg(guess * guess)).alias("rmse"),
            F.avg(F.abs(guess)).alias("mae"),
            F.sum(missing.cast("long")).alias("defaulted"),
        ).first()
        out[regression.name] = {
            "rmse": float(row.rmse or 0.0),
            "mae": float(row.mae or 0.0),
            "rows_defaulted": int(row.defaulted or 0),
        }
    return out


def top_coefficients(model: Any, predictions: Any, n: int = 15) -> list[tuple[str, float]]:
    """The ``n`` largest coefficients by magnitude, named after their assembled slots."""
    attrs = predictions.schema["raw_features"].metadata.get("ml_attr", {}).get("attrs", {})
    names = {a["idx"]: a["name"] for group in attrs.values() for a in group}
    weights = model.stages[-1].coefficients.toArray()
    ranked = sorted(range(len(weights)), key=lambda i: -abs(weights[i]))[:n]
    return [(names.get(i, f"slot {i}"), float(weights[i])) for i in ranked]


def check_parity(
    classifier: Any, regressor: Any, holdout: Any, export: Mapping[str, Any]
) -> dict[str, float]:
    """Score a bounded holdout sample with Spark and with the portable export as the API scores
    it (its folded forms); compare."""
    pipelines = load_pipelines(export)
    features = list(export["metadata"]["features"])
    sample = holdout.limit(PARITY_SAMPLE_ROWS)
    spark_cls = (
        with_probability(classifier.transform(sample)).select(*features, "p", "prediction")
    ).collect()
    spark_reg = regressor.transform(sample).select(*features, "prediction").collect()
    worst_p = worst_label = worst_reg = 0.0
    # the folded forms: what the API scores with
    classifier_form, regressor_form = fold(pipelines["classifier"]), fold(pipelines["regressor"])
    for row in spark_cls:
        probability, decision = classifier_form.classify(row.asDict())
        worst_p = max(worst_p, abs(probability - row.p))
        worst_label = max(worst_label, abs(decision - row.prediction))
    for row in spark_reg:
        worst_reg = max(worst_reg, abs(regressor_form.margin(row.asDict()) - row.prediction))
    return {
        "rows": len(spark_cls),
        "max_abs_probability": worst_p,
        "max_abs_decision": worst_label,
        "max_abs_regression": worst_reg,
    }


def _quantity(quantity: Any) -> QuantityNames:
    return QuantityNames(quantity.column, quantity.name, quantity.unit)


# -- the job ---------------------------------------------------------------------------------
def ship_usecase(spark: Any, usecase: UseCase) -> str | None:
    """Send a use case that lives outside this library to the Python workers (``addPyFile``).

    Use cases under ``headwater.usecases`` travel with the library (the job's code zip on
    EMR, the installed package locally); one configured by module path (a module or a
    package of its own) is shipped here, so the workers' ``mapInPandas`` can import it.
    Returns the path shipped, if any.
    """
    top = type(usecase).__module__.split(".")[0]
    if top == __name__.split(".")[0]:
        return None
    root = importlib.import_module(top)
    origin = Path(root.__file__ or "")
    if origin.name != "__init__.py":
        spark.sparkContext.addPyFile(str(origin))
        return str(origin)
    archive = Path(tempfile.mkdtemp(prefix="headwater-usecase-")) / f"{top}.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(origin.parent.rglob("*.py")):
            out.write(path, (Path(top) / path.relative_to(origin.parent)).as_posix())
    spark.sparkContext.addPyFile(str(archive))
    return str(archive)


@dataclass
class TrainingRun:
    """What the job's steps share: its inputs, then what each step adds (Spark frames: Any)."""

    spark: Any
    usecase: UseCase
    options: TrainOptions
    lake: Lake
    holdout_from: date
    inputs: dict[str, str] = field(default_factory=dict)
    clean_files: dict[str, tuple[str, str]] = field(default_factory=dict)
    snapshot_files: SnapshotFiles = field(default_factory=dict)
    clean: Any = None
    references: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, Any] = field(default_factory=dict)
    lookups: Any = None
    features: Any = None
    train: Any = None
    holdout: Any = None
    train_rows: int = 0
    classifier: Any = None
    regressor: Any = None
    scored: Any = None
    holdout_metrics: dict[str, float] = field(default_factory=dict)
    calibration: Any = None
    roc: Any = None
    regression: dict[str, float] = field(default_factory=dict)
    metrics: TrainingMetrics = field(default_factory=TrainingMetrics)
    export: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)

    @property
    def spec(self) -> TrainingSpec:
        """The use case's training spec."""
        return self.usecase.training

    @property
    def version_dir(self) -> tuple[str, ...]:
        """The new version's parts in the lake."""
        return layout.model_parts(self.usecase.name, self.options.version)


#: One step of the job: reads and fills the run, returns its figures for the progress log.
Step = Callable[[TrainingRun], Mapping[str, Any]]


def start_run(spark: Any, usecase: UseCase, options: TrainOptions) -> TrainingRun:
    """Check the range splits, ship the use case to the workers, open the lake."""
    holdout_from = options.holdout_from or default_holdout(options.start, options.end)
    if not splits(options.start, options.end, holdout_from):
        raise ValueError(
            f"the range {options.start}..{options.end} with a holdout from {holdout_from} is "
            "too short to split into days to train on and days to hold out: train on a longer "
            "range, or set a holdout date after its first day and no later than its last"
        )
    ship_usecase(spark, usecase)
    lake = open_lake(options.lake, region=options.region, endpoint_url=options.endpoint_url)
    return TrainingRun(spark, usecase, options, lake, holdout_from)


def verify_step(run: TrainingRun) -> Mapping[str, Any]:
    """Hash every input file against its manifest (nothing is read before it matches)."""
    o = run.options
    run.clean_files, run.snapshot_files = input_files(
        run.lake, run.usecase.name, run.spec, o.start, o.end, o.grain
    )
    files = all_files(run.clean_files, run.snapshot_files)
    run.inputs = verify_inputs(run.spark, files, (o.start, o.end))
    return {"files": len(run.inputs)}


def read_step(run: TrainingRun) -> Mapping[str, Any]:
    """Read the verified clean partitions (the range's rows, cached) and the snapshots."""
    spark, o = run.spark, run.options
    frame = spark.read.parquet(*(uri for uri, _ in run.clean_files.values()))
    run.references = {
        name: spark.read.parquet(uri) for name, (_, uri, _) in run.snapshot_files.items()
    }
    run.clean = in_range(frame, run.spec.date_column, o.start, o.end).cache()
    partitions = len(run.clean_files)
    return {"usecase": run.usecase.name, "partitions": partitions, "rows": run.clean.count()}


def windows_step(run: TrainingRun) -> Mapping[str, Any]:
    """Add the use case's windows over the whole range (cached); count the rows left null."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    windows = run.spec.windows
    if not windows:
        return {}
    windowed = with_windows(run.clean, windows).cache()
    nulls = windowed.agg(
        *(F.sum(F.col(w.name).isNull().cast("long")).alias(w.name) for w in windows)
    ).first()
    run.clean.unpersist()
    run.clean = windowed
    # a null lead label is "not yet known": neither trained on nor held out, counted here
    run.windows = {w.name: {"kind": w.kind, "null_rows": int(nulls[w.name] or 0)} for w in windows}
    return {w: v["null_rows"] for w, v in run.windows.items()}


def lookups_step(run: TrainingRun) -> Mapping[str, Any]:
    """Build the use case's lookups on the days before the holdout."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    before = run.clean.where(F.col(run.spec.date_column) < F.lit(run.holdout_from))
    run.lookups = run.spec.build_lookups(before, run.references, run.clean)
    return {}


def features_step(run: TrainingRun) -> Mapping[str, Any]:
    """Add the features on the executors (cached: both splits read them)."""
    run.features = feature_table(run.clean, run.spec, run.lookups).cache()
    return {}


def split_step(run: TrainingRun) -> Mapping[str, Any]:
    """Split by time at the holdout's first day; refuse an empty side."""
    train_df, holdout_df = split_by_time(run.features, run.spec.date_column, run.holdout_from)
    run.train, run.holdout = train_df.cache(), holdout_df.cache()
    run.train_rows, holdout_rows = run.train.count(), run.holdout.count()
    if not run.train_rows or not holdout_rows:
        raise ValueError(
            f"empty train or holdout split at {run.holdout_from}: widen the date range"
        )
    return {"train": run.train_rows, "holdout": holdout_rows}


def fit_step(run: TrainingRun) -> Mapping[str, Any]:
    """Fit the shared feature stages, the classifier and the regressor."""
    spec = run.spec
    run.classifier, run.regressor = fit_models(
        run.train, spec.categorical, spec.numeric, run.options.reg_param, spec.target.column
    )
    return {"iterations": run.classifier.stages[-1].summary.totalIterations}


def evaluate_step(run: TrainingRun) -> Mapping[str, Any]:
    """Score the holdout with both heads: the metrics, calibration, ROC and holdout window."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    spec, name, target = run.spec, run.usecase.name, run.spec.target.column
    run.scored = with_probability(run.classifier.transform(run.holdout)).cache()
    histogram = score_histogram(run.scored)
    run.holdout_metrics = classification_metrics(run.scored, histogram=histogram)
    run.calibration = calibration_table(histogram)
    run.roc = roc_curve(histogram)
    run.regression = regression_metrics(
        run.regressor.transform(run.holdout.where(F.col(target).isNotNull() & ~F.isnan(target))),
        target,
    )
    run.metrics = TrainingMetrics(
        model=name,
        usecase=name,
        version=run.options.version,
        label=_quantity(spec.label),
        target=_quantity(spec.target),
        holdout_from=run.holdout_from,
        holdout=run.holdout_metrics,
        regression=run.regression,
        baselines={},  # the baselines step fills them
        baseline_descriptions={
            b.name: b.description for b in (*spec.baselines, *spec.regression_baselines)
        },
        calibration=tuple(run.calibration),
        train_rows=run.train_rows,
        threshold=float(run.classifier.stages[-1].getThreshold()),
        # null window values (incomplete at the range's edges), per window
        extra={"windows": run.windows},
        holdout_window=holdout_window(
            run.holdout, spec.date_column, run.holdout_from, run.options.end
        ),
    )
    return {"auc_roc": round(run.holdout_metrics["auc_roc"], 4)}


def baselines_step(run: TrainingRun) -> Mapping[str, Any]:
    """The use case's naive baselines on the same holdout."""
    run.metrics = replace(run.metrics, baselines=baselines(run.train, run.holdout, run.spec))
    return {"baselines": len(run.metrics.baselines)}


def production_step(run: TrainingRun) -> Mapping[str, Any]:
    """Score the holdout with the production version, if any, and compare (bounded)."""
    version = run.options.production_version
    if not version:
        return {}
    outcome = compare_with_production(run, version)
    written = outcome.to_metrics()
    score = ProductionScore.from_dict(written["production_on_holdout"], "metrics.json")
    run.metrics = replace(
        run.metrics, production_on_holdout=score, comparison=written["comparison"]
    )
    return {"version": version, "outcome": str(outcome.outcome)}


def export_step(run: TrainingRun) -> Mapping[str, Any]:
    """The portable export of both heads, with the metadata the API serves."""
    spec, name = run.spec, run.usecase.name
    run.export = export_document(
        {
            layout.CLASSIFIER: export_pipeline(run.classifier, spec.features),
            layout.REGRESSOR: export_pipeline(run.regressor, spec.features),
        },
        {
            "model": name,
            "usecase": name,
            "version": run.options.version,
            "label": spec.label.column,
            "target": spec.target.column,
            "features": list(spec.features),
            "categorical": list(spec.categorical),
            "numeric": list(spec.numeric),
            "threshold": run.metrics.threshold,
            "trained_at": datetime.now(UTC).isoformat(),
        },
    )
    return {}


def parity_step(run: TrainingRun) -> Mapping[str, Any]:
    """Check that the export scores as Spark does; refuse a version where it does not."""
    parity = check_parity(run.classifier, run.regressor, run.holdout, run.export)
    run.parity = parity
    run.metrics = replace(run.metrics, export_parity=parity)
    if max(parity["max_abs_probability"], parity["max_abs_regression"]) > PARITY_TOLERANCE:
        raise RuntimeError(f"portable export disagrees with Spark: {parity}")
    return parity


def bounded_sample(frame: Any, rows: int, limit: int = SAMPLE_ROWS, seed: int = 16) -> Any:
    """At most ``limit`` rows of ``frame`` (of ``rows`` rows) as pandas, drawn uniformly."""
    fraction = min(1.0, limit / rows) if rows else 1.0
    # Bernoulli sampling overshoots by a few hundred rows at most: the limit only trims those.
    sampled = frame if fraction >= 1.0 else frame.sample(fraction=fraction, seed=seed)
    with warnings.catch_warnings():
        # pyspark 3.5's Arrow converter passes astype(copy=False), deprecated by pandas 3.
        warnings.filterwarnings("ignore", "The copy keyword is deprecated", DeprecationWarning)
        return sampled.limit(limit).toPandas()


def profile_step(run: TrainingRun) -> Mapping[str, Any]:
    """The version's reference for monitoring (``profile.json``): inputs, predictions, null.

    Exact ranges of the numeric inputs over every training row (one aggregation), a bounded
    sample of the training rows and of the holdout's predictions (probability and estimate,
    under the answer's keys), the holdout histogram; the rest is
    :func:`headwater.monitoring.reference.model_reference`.
    """
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    from pyspark.sql import functions as F

    spec, answer = run.spec, run.usecase.serving.answer
    bounds = []
    for name, low, high in spark_range_expressions(spec.numeric):
        # Spark orders NaN above every number: a missing value must not become the maximum.
        value = F.when(~F.isnan(name), F.col(name))
        bounds += [F.min(value).alias(low), F.max(value).alias(high)]
    ranges = ranges_from_row(run.train.agg(*bounds).first().asDict(), spec.numeric)
    train = bounded_sample(run.train.select(*spec.features, spec.date_column), run.train_rows)
    # The regressor's last stage on the classifier's features: the heads share their stages.
    head = run.regressor.stages[-1]
    estimates = head.copy({head.predictionCol: "estimate"}).transform(run.scored)
    histogram = score_histogram(run.scored)
    holdout_rows = int(sum(b.count for b in histogram))
    predictions = bounded_sample(
        estimates.select(
            F.col("p").alias(answer.probability), F.col("estimate").alias(answer.estimate)
        ),
        holdout_rows,
    )
    reference = model_reference(
        train,
        predictions,
        histogram,
        features=spec.features,
        categorical=spec.categorical,
        date_column=spec.date_column,
        ranges=ranges,
        rows={"train": run.train_rows, "holdout": holdout_rows},
    )
    text = json.dumps(reference.to_dict(), indent=1)
    run.lake.write_bytes(text.encode(), *run.version_dir, layout.PROFILE)
    return {"sampled": len(train), "months": len(reference.null.periods)}


def pyspark_version() -> str:
    """The installed pyspark's version (recorded in the lineage)."""
    # lazy: pyspark only on the training host (the CLI imports this module without it)
    import pyspark

    return str(pyspark.__version__)


def write_step(run: TrainingRun) -> Mapping[str, Any]:
    """Write both Spark models, the export, lookups, metrics and lineage."""
    o, name = run.options, run.usecase.name
    run.lineage = Lineage(
        model=name,
        usecase=name,
        version=o.version,
        run_id=o.run_id,
        code_version=o.code_version,
        training_key=o.training_key,
        trained_at=datetime.now(UTC).replace(microsecond=0),
        range=DateRange(o.start, o.end),
        holdout_from=run.holdout_from,
        inputs=run.inputs,
        config=dict(o.config),
        spark_version=run.spark.version,
        pyspark_version=pyspark_version(),
        python_version=platform.python_version(),
    )
    for head, model in ((layout.CLASSIFIER, run.classifier), (layout.REGRESSOR, run.regressor)):
        model.write().overwrite().save(spark_path(run.lake, *run.version_dir, layout.SPARK, head))
    for file_name, body in (
        (layout.EXPORT, run.export),
        (layout.LOOKUPS, run.lookups.to_dict()),
        (layout.METRICS, run.metrics.to_dict()),
        (layout.LINEAGE, run.lineage.to_dict()),
    ):
        text = json.dumps(body, indent=1, default=str)
        run.lake.write_bytes(text.encode(), *run.version_dir, file_name)
    return {"uri": run.lake.uri_of(*run.version_dir)}


def report_step(run: TrainingRun) -> Mapping[str, Any]:
    """Render the report, then publish the version (``_SUCCESS`` last)."""
    report = render_report(
        title=f"{run.usecase.title}: model {run.usecase.name} {run.options.version}",
        spec=run.spec,
        metrics=run.metrics,
        roc_points=run.roc,
        calibration=run.calibration,
        top_coefficients=top_coefficients(run.classifier, run.scored),
        lineage=run.lineage,
    )
    run.lake.write_bytes(report.encode("utf-8"), *run.version_dir, layout.REPORT)
    run.lake.write_bytes(b"", *run.version_dir, layout.SUCCESS)
    return {"uri": run.lake.uri_of(*run.version_dir)}


#: The job, in order: each step timed, one progress record each.
STEPS: tuple[tuple[str, Step], ...] = (
    ("verify inputs", verify_step),
    ("read", read_step),
    ("windows", windows_step),
    ("lookups", lookups_step),
    ("features", features_step),
    ("split", split_step),
    ("fit", fit_step),
    ("evaluate", evaluate_step),
    ("baselines", baselines_step),
    ("compare with production", production_step),
    ("export", export_step),
    ("parity", parity_step),
    ("profile", profile_step),
    ("write", write_step),
    ("report", report_step),
)


def run_steps(run: TrainingRun, steps: Sequence[tuple[str, Step]] = STEPS) -> dict[str, float]:
    """Run ``steps`` in order, each timed and logged (:func:`progress`); their seconds."""
    seconds: dict[str, float] = {}
    for name, step in steps:
        began = time.perf_counter()
        fields = step(run)
        seconds[name] = round(time.perf_counter() - began, 3)
        progress(name, seconds[name], **fields)
    return seconds


def train(spark: Any, usecase: UseCase, options: TrainOptions) -> dict[str, Any]:
    """Run the whole job for ``usecase``; return a summary (version, headline metrics, timings)."""
    started = time.perf_counter()
    run = start_run(spark, usecase, options)
    seconds = run_steps(run)
    for frame in (run.clean, run.features, run.train, run.holdout, run.scored):
        frame.unpersist()
    until_fit = list(seconds)[: list(seconds).index("fit") + 1]
    return {
        "usecase": usecase.name,
        "version": options.version,
        "uri": run.lake.uri_of(*run.version_dir),
        "auc_roc": run.holdout_metrics["auc_roc"],
        "log_loss": run.holdout_metrics["log_loss"],
        "rmse": run.regression["rmse"],
        "fit_seconds": round(sum(seconds[step] for step in until_fit), 2),
        "seconds": round(time.perf_counter() - started, 2),
        "steps": seconds,
        "parity": run.parity,
    }
