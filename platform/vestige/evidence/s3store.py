"""The S3-compatible evidence store: the four primitives of :class:`BlobStore` over boto3.

Workers on other hosts read evidence and model artifacts from here. Objects
are named ``<prefix><ab>/<cd>/<sha256>`` like the local folder's files. A PUT
is atomic in S3 (an object is visible whole or not at all) and carries the
SHA-256 as its checksum, so a server that checks checksums (AWS, MinIO; moto
does not) refuses bytes damaged in transit; reads are verified by :meth:`BlobStore.get` as for every backend.

Credentials never come from Vestige's configuration: boto3 reads them from
the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, an instance role), so no file in the repository holds one.
"""

from __future__ import annotations

import base64
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from vestige.core.errors import BlobMissingError, ConfigError, StoreError
from vestige.evidence.store import BlobStore

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore(BlobStore):
    """Blobs as objects of one bucket on any S3-compatible server (AWS, MinIO, Ceph, moto)."""

    def __init__(self, bucket: str, *, endpoint_url: str = "", region: str = "", prefix: str = "", client: Any = None) -> None:
        if not bucket:
            raise ConfigError("configuration key store.bucket must name a bucket when store.backend is s3")
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.prefix = prefix
        self._client = client or boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=region or None,
            # Path-style addressing works with every S3-compatible server, virtual hosts need DNS.
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
        )

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3 bucket {self.bucket}{where}" + (f" under {self.prefix}" if self.prefix else "")

    def key_for(self, sha256: str) -> str:
        return f"{self.prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _exists(self, sha256: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.key_for(sha256))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return False
            raise self._failure("check", sha256, exc) from None
        except BotoCoreError as exc:
            raise self._failure("check", sha256, exc) from None
        return True

    def _write(self, sha256: str, data: bytes) -> None:
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=self.key_for(sha256), Body=data, ChecksumSHA256=checksum,
                ContentType="application/octet-stream",
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._failure("write", sha256, exc) from None

    def _read(self, sha256: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.key_for(sha256))
            return response["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise BlobMissingError(
                    f"blob {sha256[:12]}… is missing from the evidence store ({self.describe()}); restore it from a backup"
                ) from None
            raise self._failure("read", sha256, exc) from None
        except BotoCoreError as exc:
            raise self._failure("read", sha256, exc) from None

    def _failure(self, verb: str, sha256: str, exc: Exception) -> StoreError:
        reason = str(exc).replace("\n", " ")
        return StoreError(f"cannot {verb} blob {sha256[:12]}… in the evidence store ({self.describe()}): {reason}")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
