"""A base model in another bucket: the same S3 server is reused, any other store refuses."""

from __future__ import annotations

import pytest
from minio import Minio
from streamtune_shared.storage import MinioObjectStore, store_for_bucket
from streamtune_shared.testing import InMemoryObjectStore


def test_the_same_bucket_is_the_same_store_and_another_reuses_the_client() -> None:
    store = MinioObjectStore(Minio("127.0.0.1:9", access_key="k", secret_key="s", secure=False), "streamtune")
    assert store_for_bucket(store, "streamtune") is store
    other = store_for_bucket(store, "bases")
    assert isinstance(other, MinioObjectStore) and other.bucket == "bases" and other.client is store.client


def test_a_store_without_buckets_cannot_reach_another() -> None:
    store = InMemoryObjectStore()
    assert store_for_bucket(store, "any") is store  # it has no bucket: every bucket is its own
    store.bucket = "streamtune"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="'bases' is not reachable"):
        store_for_bucket(store, "bases")
