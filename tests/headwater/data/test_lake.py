"""The lake on local disk and on S3 (moto server): atomic publishing, manifests, integrity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.data.lake import MANIFEST, Lake, LakeError, Manifest, open_lake

ZONE, DATASET, PART = "raw", "meters", "date=2013-01-01"
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


def rows(ids: list[int]) -> pa.Table:
    return pa.table({"id": ids, "name": [f"n{i}" for i in ids]}, schema=SCHEMA)


def publish(lake: Lake, batches: object, run_id: str = "run1", partition: str = PART) -> Manifest:
    return lake.publish(
        ZONE, DATASET, partition, batches, schema=SCHEMA, source="test:readings", run_id=run_id
    )


def data_files(lake: Lake, partition: str = PART) -> list[str]:
    return [n for n in lake.list_dir(ZONE, DATASET, partition) if n != MANIFEST]


# --- publish and read ---------------------------------------------------------------------------


def test_publish_then_read_round_trips_rows_and_schema(lake: Lake) -> None:
    # Given two batches, the first with a narrower integer type than the schema
    narrow = pa.table({"id": pa.array([1, 2], pa.int32()), "name": ["a", "b"]})

    # When they are published and read back
    publish(lake, [narrow, rows([3])])
    table, manifest = lake.read(ZONE, DATASET, PART)

    # Then the rows come back in order, cast to the published schema
    assert table.schema == SCHEMA
    assert table.to_pydict() == {"id": [1, 2, 3], "name": ["a", "b", "n3"]}
    assert manifest.rows == 3


def test_manifest_describes_the_published_file(lake: Lake) -> None:
    # When a partition is published with extra metadata
    manifest = lake.publish(
        ZONE,
        DATASET,
        PART,
        [rows([1, 2, 3, 4])],
        schema=SCHEMA,
        source="sql:readings",
        run_id="run-42",
        extra={"inputs": {"a": 1}},
    )

    # Then the stored manifest names the data file, its rows, schema, checksum and lineage
    stored = json.loads(lake.read_bytes(ZONE, DATASET, PART, MANIFEST))
    assert stored["version"] == 1
    assert Manifest.from_json(json.dumps(stored)) == manifest
    assert (stored["zone"], stored["dataset"], stored["partition"]) == (ZONE, DATASET, PART)
    assert stored["rows"] == 4
    assert stored["schema"] == {"id": "int64", "name": "string"}
    assert stored["source"] == "sql:readings"
    assert stored["run_id"] == "run-42"
    assert stored["extra"] == {"inputs": {"a": 1}}
    assert stored["file"] in data_files(lake)
    assert stored["file"].startswith("part-run-42-") and stored["file"].endswith(".parquet")
    data = lake.read_bytes(ZONE, DATASET, PART, stored["file"])
    assert stored["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows == 4


def test_publishing_many_batches_streams_them_all(lake: Lake) -> None:
    # Given a generator of 40 batches of 250 rows (consumed once, never materialised as a list)
    def batches() -> Iterator[pa.Table]:
        for start in range(0, 10_000, 250):
            yield rows(list(range(start, start + 250)))

    # When it is published
    manifest = publish(lake, batches())

    # Then every row is kept, in order, one row group per batch
    table, _ = lake.read(ZONE, DATASET, PART)
    assert manifest.rows == table.num_rows == 10_000
    assert table["id"].to_pylist() == list(range(10_000))
    data = lake.read_bytes(ZONE, DATASET, PART, manifest.file)
    assert pq.ParquetFile(pa.BufferReader(data)).metadata.num_row_groups == 40


def test_publishing_no_rows_gives_an_empty_partition_with_its_schema(lake: Lake) -> None:
    # When nothing (or only empty batches) is published
    manifest = publish(lake, [rows([]), rows([])])

    # Then the partition exists, is empty and keeps the schema
    table, _ = lake.read(ZONE, DATASET, PART)
    assert manifest.rows == table.num_rows == 0
    assert table.schema == SCHEMA


def test_republishing_replaces_the_partition_whole(lake: Lake) -> None:
    # Given a published partition
    first = publish(lake, [rows([1, 2, 3])], run_id="run1")

    # When it is published again with other rows
    second = publish(lake, [rows([10, 20])], run_id="run2")

    # Then exactly one data file is left, the new one, holding only the new rows
    assert data_files(lake) == [second.file]
    assert first.file != second.file
    table, manifest = lake.read(ZONE, DATASET, PART)
    assert table["id"].to_pylist() == [10, 20]
    assert manifest.run_id == "run2"


def test_crash_mid_write_leaves_the_previous_version_untouched(lake: Lake) -> None:
    # Given a published partition
    publish(lake, [rows([1, 2, 3])], run_id="good")
    manifest_before = lake.read_bytes(ZONE, DATASET, PART, MANIFEST)
    files_before = data_files(lake)

    def crashing() -> Iterator[pa.Table]:
        yield rows([100, 101])
        raise RuntimeError("source connection lost")

    # When a new version crashes after its first batch
    with pytest.raises(RuntimeError, match="source connection lost"):
        publish(lake, crashing(), run_id="crashed")

    # Then the manifest and the data files are exactly as before, and the old rows read back
    assert lake.read_bytes(ZONE, DATASET, PART, MANIFEST) == manifest_before
    assert data_files(lake) == files_before
    table, manifest = lake.read(ZONE, DATASET, PART)
    assert table["id"].to_pylist() == [1, 2, 3]
    assert manifest.run_id == "good"


def test_crash_on_first_publish_leaves_nothing_published(lake: Lake) -> None:
    def crashing() -> Iterator[pa.Table]:
        yield rows([1])
        raise RuntimeError("boom")

    # When the very first version of a partition crashes
    with pytest.raises(RuntimeError, match="boom"):
        publish(lake, crashing())

    # Then the partition is not published and no data file is visible
    assert lake.partitions(ZONE, DATASET) == []
    assert data_files(lake) == []
    with pytest.raises(LakeError, match="is not published"):
        lake.read(ZONE, DATASET, PART)


# --- integrity ----------------------------------------------------------------------------------


def test_tampered_data_file_fails_its_checksum(lake: Lake) -> None:
    # Given a published partition whose data file is then changed in place
    manifest = publish(lake, [rows(list(range(100)))])
    data = bytearray(lake.read_bytes(ZONE, DATASET, PART, manifest.file))
    data[len(data) // 2] ^= 0xFF
    lake.write_bytes(bytes(data), ZONE, DATASET, PART, manifest.file)

    # When it is read, then the error names the file and both digests
    with pytest.raises(LakeError) as caught:
        lake.read(ZONE, DATASET, PART)
    message = str(caught.value)
    assert message.startswith("checksum mismatch for ")
    assert lake.uri_of(ZONE, DATASET, PART, manifest.file) in message
    assert manifest.checksum in message
    # and the next step is the command that republishes it (a plain re-run skips it)
    assert "a plain re-run skips a published partition" in message
    assert message.endswith(
        "`headwater run --start 2013-01-01 --end 2013-01-01 --rerun extract --until clean`"
    )


def test_data_file_replaced_by_another_valid_file_fails_its_checksum(lake: Lake) -> None:
    # Given a partition whose data file is swapped for a well-formed Parquet file of other rows
    manifest = publish(lake, [rows([1, 2])])
    sink = pa.BufferOutputStream()
    pq.write_table(rows([7, 8]), sink)
    lake.write_bytes(sink.getvalue().to_pybytes(), ZONE, DATASET, PART, manifest.file)

    # Then reading it fails, and skipping verification shows why it had to
    with pytest.raises(LakeError, match="checksum mismatch"):
        lake.read(ZONE, DATASET, PART)
    table, _ = lake.read(ZONE, DATASET, PART, verify=False)
    assert table["id"].to_pylist() == [7, 8]


@pytest.mark.parametrize(
    ("zone", "dataset", "partition", "command"),
    [
        (
            "clean", "meters/readings", "month=2013-02",
            "headwater run --usecase meters --start 2013-02-01 --end 2013-02-28 --rerun clean "
            "--until clean",
        ),
        (
            "raw", "meters/readings", "date=2013-01-05",
            "headwater run --usecase meters --start 2013-01-05 --end 2013-01-05 --rerun extract "
            "--until clean",
        ),
        (
            "raw", "meters/weather", "hour=7",
            "headwater run --usecase meters --start FIRST_DATE --end LAST_DATE --rerun extract "
            "--until clean",
        ),
        (
            "raw", "meters/sites", "snapshot=2013-03-12",
            "headwater run --usecase meters --start FIRST_DATE --end 2013-03-12 --rerun extract",
        ),
    ],
    ids=["clean-month", "raw-day", "raw-other-key", "raw-snapshot"],
)  # fmt: skip
def test_the_repair_command_republishes_the_partition_whole(
    zone: str, dataset: str, partition: str, command: str
) -> None:
    from headwater.data.lake import repair_command

    assert repair_command(zone, dataset, partition) == command


def test_a_snapshot_is_repaired_over_the_run_that_reads_it() -> None:
    from datetime import date

    from headwater.data.lake import repair_command

    run = (date(2013, 1, 1), date(2013, 3, 12))

    assert repair_command("raw", "meters/sites", "snapshot=2013-03-12", run) == (
        "headwater run --usecase meters --start 2013-01-01 --end 2013-03-12 --rerun extract"
    )


def test_manifest_row_count_is_checked(lake: Lake) -> None:
    # Given a manifest that claims more rows than its file holds
    publish(lake, [rows([1, 2])])
    body = json.loads(lake.read_bytes(ZONE, DATASET, PART, MANIFEST))
    body["rows"] = 3
    lake.write_bytes(json.dumps(body).encode(), ZONE, DATASET, PART, MANIFEST)

    # Then reading fails naming both counts
    with pytest.raises(LakeError, match="row count mismatch .*: manifest 3, data 2"):
        lake.read(ZONE, DATASET, PART)


def test_reading_an_unpublished_partition_fails(lake: Lake) -> None:
    # Given a partition directory holding a data file but no manifest
    lake.write_bytes(b"PAR1 not really", ZONE, DATASET, "date=2013-01-02", "part-x.parquet")

    # When either it or a partition that does not exist at all is read, then it is unpublished
    for partition in ("date=2013-01-02", "date=2013-01-03"):
        assert lake.manifest(ZONE, DATASET, partition) is None
        with pytest.raises(LakeError) as caught:
            lake.read(ZONE, DATASET, partition)
        assert str(caught.value) == (
            f"partition {lake.uri_of(ZONE, DATASET, partition)} is not published (no {MANIFEST})"
        )


def test_partitions_lists_only_published_ones(lake: Lake) -> None:
    # Given two published partitions, one directory without a manifest and an empty dataset
    publish(lake, [rows([1])], partition="date=2013-01-02")
    publish(lake, [rows([2])], partition="date=2013-01-01")
    lake.write_bytes(b"orphan", ZONE, DATASET, "date=2013-01-03", "part-x.parquet")

    # Then only the published ones are listed, sorted
    assert lake.partitions(ZONE, DATASET) == ["date=2013-01-01", "date=2013-01-02"]
    assert lake.partitions(ZONE, "no-such-dataset") == []


# --- generic objects ----------------------------------------------------------------------------


def test_write_bytes_then_read_bytes(lake: Lake) -> None:
    # Given nothing at a path
    assert not lake.exists("runs", "r1", "state.json")

    # When bytes are written (creating parents) and then overwritten
    lake.write_bytes(b"first", "runs", "r1", "state.json")
    lake.write_bytes(b"\x00second\xff", "runs", "r1", "state.json")

    # Then the last write reads back byte for byte, and nothing else was left beside it
    assert lake.exists("runs", "r1", "state.json")
    assert lake.read_bytes("runs", "r1", "state.json") == b"\x00second\xff"
    assert lake.list_dir("runs", "r1") == ["state.json"]


def test_read_bytes_of_a_missing_object_names_it(lake: Lake) -> None:
    with pytest.raises(LakeError) as caught:
        lake.read_bytes("runs", "nope.json")
    assert str(caught.value) == f"{lake.uri_of('runs', 'nope.json')} does not exist"


def test_delete_removes_an_object_and_ignores_a_missing_one(lake: Lake) -> None:
    lake.write_bytes(b"x", "tmp", "a")
    lake.delete("tmp", "a")
    lake.delete("tmp", "a")
    assert not lake.exists("tmp", "a")


# --- URIs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://x", "unsupported lake URI 'ftp://x': use file://PATH or s3://BUCKET/PREFIX"),
        ("/var/lake", "unsupported lake URI '/var/lake': use file://PATH or s3://BUCKET/PREFIX"),
        ("s3://", "lake URI 's3://' names no bucket"),
        ("s3:///prefix", "lake URI 's3:///prefix' names no bucket"),
    ],
)
def test_bad_uris_are_rejected_clearly(uri: str, message: str) -> None:
    with pytest.raises(LakeError) as caught:
        open_lake(uri)
    assert str(caught.value) == message


def test_file_uri_is_resolved_and_created(tmp_path: Path) -> None:
    # When a local lake is opened at a path that does not exist yet (with a trailing slash)
    lake = open_lake(f"file://{tmp_path}/a/../lake/")

    # Then the directory exists and the URI and root are normalised
    assert (tmp_path / "lake").is_dir()
    assert lake.is_local
    assert lake.uri == f"file://{tmp_path}/lake"
    assert lake.uri_of("raw", "meters") == f"file://{tmp_path}/lake/raw/meters"


def test_s3_uri_keeps_bucket_and_prefix(moto_endpoint: str, aws_env: None) -> None:
    lake = open_lake("s3://my-bucket/some/prefix/", region="us-east-1", endpoint_url=moto_endpoint)
    assert not lake.is_local
    assert (lake.uri, lake.root) == ("s3://my-bucket/some/prefix", "my-bucket/some/prefix")
    assert lake.path("raw", "/meters/") == "my-bucket/some/prefix/raw/meters"
