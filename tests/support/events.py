"""Sample events as EventBridge delivers them, in the shapes AWS documents: what a rule's pattern is matched
against (``support.aws.event_matches``)."""

from __future__ import annotations

from typing import Any

from offline.engine import ACCOUNT_ID
from support.stacks import REGION


def s3_event(bucket: str, key: str, reason: str = "PutObject", detail_type: str = "Object Created") -> dict[str, Any]:
    """An event S3 sends to EventBridge, as the S3 User Guide shows it ("EventBridge event message structure",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html)."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": ACCOUNT_ID,
        "time": "2021-11-12T00:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": 5,
                "etag": "b1946ac92492d2347c6235b4d2611184",
                "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                "sequencer": "617f08299329d189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT_ID,
            "source-ip-address": "203.0.113.10",
            "reason": reason,
        },
    }


def cloudtrail_event(bucket: str, key: str, event_name: str = "PutObject", read_only: bool = False) -> dict[str, Any]:
    """A CloudTrail S3 data event as EventBridge receives it ("AWS API Call via CloudTrail",
    https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-s3.html; the record's fields:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-understanding-s3-entries.html)."""
    request: dict[str, Any] = {"bucketName": bucket, "Host": f"{bucket}.s3.{REGION}.amazonaws.com", "key": key}
    if event_name == "CopyObject":
        request["x-amz-copy-source"] = f"{bucket}/staging/{key}"
    if event_name == "CompleteMultipartUpload":
        request["uploadId"] = "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
    return {
        "version": "0",
        "id": "3a3a3a3a-1b1b-2c2c-3d3d-4e4e4e4e4e4e",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.s3",
        "account": ACCOUNT_ID,
        "time": "2024-05-02T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.10",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLE",
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/gitlab-uploader",
                "accountId": ACCOUNT_ID,
                "accessKeyId": "AKIAEXAMPLE",
                "userName": "gitlab-uploader",
            },
            "eventTime": "2024-05-02T10:00:00Z",
            "eventSource": "s3.amazonaws.com",
            "eventName": event_name,
            "awsRegion": REGION,
            "sourceIPAddress": "203.0.113.10",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": request,
            "responseElements": None,
            "additionalEventData": {"SignatureVersion": "SigV4", "bytesTransferredIn": 1024},
            "requestID": "N4N7GDK58NMKJ12R",
            "eventID": "0e0e0e0e-1f1f-2a2a-3b3b-4c4c4c4c4c4c",
            "readOnly": read_only,
            "resources": [
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                {"accountId": ACCOUNT_ID, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
            ],
            "eventType": "AwsApiCall",
            "managementEvent": False,
            "recipientAccountId": ACCOUNT_ID,
            "eventCategory": "Data",
        },
    }
