"""The evidence store's rules, checked on every backend: the local folder and S3 (moto on loopback)."""

import hashlib
import os
import socket
import stat
import uuid
from dataclasses import dataclass
from typing import Callable

import boto3
import pytest

from vestige.core.errors import BlobCorruptedError, BlobMissingError, ConfigError, StoreError
from vestige.evidence.s3store import S3BlobStore
from vestige.evidence.store import BlobStore, LocalBlobStore, open_store

S3_ENV = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API server (moto in server mode) on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the loopback server, and a raw client to reach behind the store's back."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return bucket, client


@dataclass
class Backend:
    """A store plus the two ways to damage it from outside: rewrite a blob, remove a blob."""

    store: BlobStore
    overwrite: Callable[[str, bytes], None]
    remove: Callable[[str], None]
    list_blobs: Callable[[], list[str]]


def local_backend(tmp_path) -> Backend:
    store = LocalBlobStore(tmp_path / "blobs")

    def overwrite(sha: str, data: bytes) -> None:
        os.chmod(store.path_for(sha), 0o644)
        store.path_for(sha).write_bytes(data)

    def list_blobs() -> list[str]:
        return sorted(p.name for p in store.root.rglob("*") if p.is_file())

    return Backend(store, overwrite, lambda sha: store.path_for(sha).unlink(), list_blobs)


def s3_backend(s3_endpoint: str, bucket: str, client) -> Backend:
    store = S3BlobStore(bucket, endpoint_url=s3_endpoint, region="us-east-1", prefix="lab/")

    def list_blobs() -> list[str]:
        listing = client.list_objects_v2(Bucket=bucket)
        return sorted(obj["Key"].rsplit("/", 1)[-1] for obj in listing.get("Contents", []))

    return Backend(
        store,
        lambda sha, data: client.put_object(Bucket=bucket, Key=store.key_for(sha), Body=data),
        lambda sha: client.delete_object(Bucket=bucket, Key=store.key_for(sha)),
        list_blobs,
    )


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path) -> Backend:
    if request.param == "local":
        return local_backend(tmp_path)
    bucket, client = request.getfixturevalue("s3_bucket")
    return s3_backend(request.getfixturevalue("s3_endpoint"), bucket, client)


def test_put_names_blobs_by_sha256_and_reads_them_back(backend):
    data = b"evidence bytes"
    sha = backend.store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert backend.store.get(sha) == data
    assert backend.store.exists(sha)
    assert not backend.store.exists("0" * 64)


def test_writing_the_same_content_twice_keeps_one_blob(backend):
    first = backend.store.put(b"x" * 100)
    second = backend.store.put(b"x" * 100)
    assert first == second
    assert backend.list_blobs() == [first]


def test_a_corrupted_blob_is_reported_not_served(backend):
    sha = backend.store.put(b"original evidence")
    backend.overwrite(sha, b"tampered evidence")
    with pytest.raises(BlobCorruptedError, match="corrupted"):
        backend.store.get(sha)
    with pytest.raises(BlobCorruptedError):
        backend.store.verify(sha)


def test_a_missing_blob_is_reported(backend):
    sha = backend.store.put(b"here today")
    backend.remove(sha)
    with pytest.raises(BlobMissingError, match="missing from the evidence store"):
        backend.store.get(sha)


@pytest.mark.parametrize("name", ["../../etc/passwd", "ABC", "0" * 63, "g" * 64])
def test_names_that_are_not_digests_are_refused(backend, name):
    with pytest.raises(StoreError, match="not a SHA-256"):
        backend.store.get(name)
    with pytest.raises(StoreError, match="not a SHA-256"):
        backend.store.exists(name)


# What only one backend can show.


def test_local_blobs_are_sharded_read_only_and_no_temporary_file_remains(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    sha = store.put(b"abc")
    assert store.path_for(sha).relative_to(store.root).parts[:2] == (sha[:2], sha[2:4])
    assert not store.path_for(sha).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert list((store.root / "tmp").iterdir()) == []


def test_a_failed_local_write_leaves_no_partial_blob(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path / "blobs")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match="No space left"):
        store.put(b"will not fit")
    monkeypatch.undo()
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_s3_objects_live_under_the_prefix_sharded_like_the_folder(s3_endpoint, s3_bucket):
    bucket, client = s3_bucket
    store = S3BlobStore(bucket, endpoint_url=s3_endpoint, prefix="lab/")
    sha = store.put(b"checked in transit")
    key = f"lab/{sha[:2]}/{sha[2:4]}/{sha}"
    assert [obj["Key"] for obj in client.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


def test_s3_unknown_bucket_and_unreachable_server_are_store_errors(s3_endpoint):
    with pytest.raises(StoreError, match="S3 bucket no-such-bucket"):
        S3BlobStore("no-such-bucket", endpoint_url=s3_endpoint).put(b"nowhere to go")
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError, match="cannot check blob"):
        S3BlobStore("any", endpoint_url=closed).put(b"nobody listens")


def test_configuration_selects_the_backend(tmp_path, s3_endpoint, s3_bucket):
    from vestige.core.config import load_config

    bucket, _ = s3_bucket
    env = {"VESTIGE_STORE__BACKEND": "s3", "VESTIGE_STORE__BUCKET": bucket, "VESTIGE_STORE__ENDPOINT_URL": s3_endpoint,
           "VESTIGE_DATA_DIR": str(tmp_path)}
    config = load_config(environ=env)
    store = open_store(config.store.backend, config.store_path, config.store)
    assert isinstance(store, S3BlobStore)
    assert store.get(store.put(b"via configuration")) == b"via configuration"
    assert isinstance(open_store("local", tmp_path / "blobs", config.store), LocalBlobStore)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[store]\nbackend = 's3'\n", "store.bucket must name a bucket"),
        ("[store]\nbackend = 's3'\nbucket = 'b'\naccess_key = 'AKIA...'\n", "unknown configuration key store.access_key"),
        ("[store]\nbackend = 's3'\nbucket = 'b'\nsecret_access_key = 'x'\n", "unknown configuration key store.secret_access_key"),
    ],
)
def test_s3_configuration_needs_a_bucket_and_never_takes_credentials(tmp_path, toml, message):
    from vestige.core.config import load_config

    path = tmp_path / "lab.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        config = load_config(path=path, environ={})
        open_store(config.store.backend, config.store_path, config.store)


def test_a_whole_case_runs_on_the_s3_backend(vestige, env, make_photo, s3_bucket, s3_endpoint, tmp_path):
    """Chosen by configuration alone: ingest, a signed bundle and its offline check, with every blob in S3."""
    bucket, client = s3_bucket
    env.update({"VESTIGE_STORE__BACKEND": "s3", "VESTIGE_STORE__BUCKET": bucket,
                "VESTIGE_STORE__ENDPOINT_URL": s3_endpoint, "VESTIGE_STORE__PREFIX": "lab/"})
    assert vestige("init").exit_code == 0
    assert vestige("case", "new", "--ref", "S3-1", "--title", "On object storage").exit_code == 0
    photo = make_photo("a.jpg", seed=3)
    assert vestige("ingest", "S3-1", photo, "--by", "A. Examiner").exit_code == 0
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    client.head_object(Bucket=bucket, Key=f"lab/{sha[:2]}/{sha[2:4]}/{sha}")
    assert vestige("keys", "init").exit_code == 0
    bundle = tmp_path / "s3.zip"
    exported = vestige("report", "S3-1", "--format", "bundle", "--out", bundle)
    assert exported.exit_code == 0, exported.stderr
    keys = [obj["Key"] for obj in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 5  # the original, the three inner reports and the bundle itself
    assert vestige("verify", bundle).exit_code == 0
    assert not (tmp_path / "data" / "blobs" / sha[:2]).exists()
