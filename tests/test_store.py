import hashlib
import os
import stat

import pytest

from vestige.errors import BlobCorruptedError, BlobMissingError, StoreError
from vestige.store import LocalBlobStore


@pytest.fixture
def store(tmp_path):
    return LocalBlobStore(tmp_path / "blobs")


def test_put_names_blobs_by_sha256_and_reads_them_back(store):
    data = b"evidence bytes"
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.get(sha) == data
    assert store.exists(sha)
    assert store.path_for(sha).relative_to(store.root).parts[:2] == (sha[:2], sha[2:4])


def test_writing_the_same_content_twice_keeps_one_file(store):
    first = store.put(b"x" * 100)
    second = store.put(b"x" * 100)
    assert first == second
    assert [p for p in store.root.rglob("*") if p.is_file()] == [store.path_for(first)]


def test_blobs_are_read_only_and_no_temporary_file_remains(store):
    sha = store.put(b"abc")
    assert not store.path_for(sha).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert list((store.root / "tmp").iterdir()) == []


def test_a_corrupted_blob_is_reported_not_served(store):
    sha = store.put(b"original evidence")
    path = store.path_for(sha)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered evidence")
    with pytest.raises(BlobCorruptedError, match="corrupted"):
        store.get(sha)


def test_a_missing_blob_is_reported(store):
    sha = store.put(b"here today")
    store.path_for(sha).unlink()
    with pytest.raises(BlobMissingError, match="missing from the evidence store"):
        store.get(sha)


@pytest.mark.parametrize("name", ["../../etc/passwd", "ABC", "0" * 63, "g" * 64])
def test_names_that_are_not_digests_are_refused(store, name):
    with pytest.raises(StoreError, match="not a SHA-256"):
        store.get(name)


def test_a_failed_write_leaves_no_partial_blob(store, monkeypatch):
    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match="No space left"):
        store.put(b"will not fit")
    monkeypatch.undo()
    assert [p for p in store.root.rglob("*") if p.is_file()] == []
