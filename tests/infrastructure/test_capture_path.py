"""The cloud capture path as the template defines it: Firehose (moto) -> lake -> collection."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import boto3
from cfnlint.decode import decode_str

from headwater.core import layout
from headwater.core.partitions import Partition
from headwater.data.lake import open_lake
from headwater.monitoring.collect import collect_predictions, read_predictions
from headwater.serving.capture import FORMAT, CaptureRecord, FirehoseSink
from tests.infrastructure.test_template import REGION, TEMPLATE


def resources() -> dict[str, Any]:
    body, problems = decode_str(TEMPLATE.read_text())
    assert not problems
    return body["Resources"]


def record(i: int, usecase: str = "meters") -> CaptureRecord:
    return CaptureRecord(
        request_id=f"r{i}",
        instance=0,
        usecase=usecase,
        model_version="v1",
        served_at="2013-03-01T15:00:00.000000+00:00",
        features={"meter": "m1"},
        probability=0.3,
        decision=False,
        estimate=2.0,
        threshold=0.5,
    )


def test_the_template_delivers_capture_lines_where_the_collector_reads() -> None:
    found = resources()
    s3 = found["CaptureDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    day, hour = "!{timestamp:yyyy-MM-dd}", "!{timestamp:HH}"
    assert s3["Prefix"] == "/".join(layout.capture_parts(layout.CAPTURE_STREAM, day, hour)) + "/"
    assert FORMAT in found["CaptureSubscriptionFilter"]["Properties"]["FilterPattern"]
    lifecycle = found["LakeBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (rule,) = [r for r in lifecycle if r["Id"] == "expire-captured-predictions"]
    assert rule["Prefix"] == f"{layout.CAPTURE}/"
    assert rule["ExpirationInDays"] == {"Ref": "CaptureRetentionDays"}


def test_the_roles_reach_only_the_capture_path() -> None:
    found = resources()
    delivery = found["CaptureDeliveryRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    writes = [s for s in delivery["Statement"] if "s3:PutObject" in s["Action"]]
    assert [w["Resource"] for w in writes] == [{"Fn::Sub": "${LakeBucket.Arn}/capture/*"}]
    put = found["CaptureSubscriptionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    (statement,) = put["Statement"]
    assert statement["Action"] == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    assert "deliverystream/${CaptureDeliveryStream}" in statement["Resource"]["Fn::Sub"]


def test_firehose_delivers_the_lines_and_collection_reads_them(
    s3_lake_uri: str, moto_endpoint: str
) -> None:
    # Given the template's delivery stream on moto, into the lake's bucket
    bucket = s3_lake_uri.removeprefix("s3://").split("/")[0]
    s3_config = resources()["CaptureDeliveryStream"]["Properties"][
        "ExtendedS3DestinationConfiguration"
    ]
    firehose = boto3.client("firehose", region_name=REGION, endpoint_url=moto_endpoint)
    firehose.create_delivery_stream(
        DeliveryStreamName="headwater-test-capture",
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/capture-delivery",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": s3_config["Prefix"],
        },
    )
    # When capture lines are put (as the subscription does once Firehose has unzipped them),
    # one of another use case and one twice
    lines = [record(1), record(2), record(2), record(3, "another")]
    FirehoseSink("headwater-test-capture", client=firehose).write(lines)
    # Then one object holds them, as JSON lines (moto does not evaluate !{timestamp:...})
    client = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    (key,) = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert key.startswith("capture/_stream/")
    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert [CaptureRecord.from_dict(json.loads(x)) for x in data.splitlines()] == lines
    # And, filed where Firehose's prefix puts it, collection publishes the meters records once
    lake_prefix = s3_lake_uri.removeprefix(f"s3://{bucket}").strip("/")
    target = "/".join([lake_prefix, *layout.capture_parts("_stream", "2013-03-01", "15"), "obj"])
    client.put_object(Bucket=bucket, Key=target.strip("/"), Body=data)
    lake = open_lake(s3_lake_uri, region=REGION, endpoint_url=moto_endpoint)
    day = Partition(date(2013, 3, 1), date(2013, 3, 2), "day")
    collected = collect_predictions(lake, "meters", day, "America/New_York", run_id="t")
    assert (collected.kept, collected.duplicates) == (2, 1)
    assert [r.request_id for r in read_predictions(lake, "meters", day.key)] == ["r1", "r2"]
