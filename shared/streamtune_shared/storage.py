"""Object storage (S3 / MinIO / SeaweedFS) behind a small interface the services share."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Protocol

from minio import Minio
from minio.error import S3Error

from .settings import InfraSettings


class ObjectNotFound(KeyError):
    """The key does not exist in the bucket."""


class ObjectStore(Protocol):
    """Blocking object-store calls; async callers wrap them in ``asyncio.to_thread``."""

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


class MinioObjectStore:
    """An ObjectStore on one bucket of an S3-compatible server, through the minio client."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing."""
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(key) from exc
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(o.object_name for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                      if o.object_name is not None)

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, key)

    def clear(self) -> None:
        """Delete every object in the bucket (the bucket itself stays)."""
        for key in self.list_keys(""):
            self.delete(key)

    def drop_bucket(self) -> None:
        """Delete every object, then the bucket; nothing to do when the bucket is missing."""
        if not self.client.bucket_exists(self.bucket):
            return
        self.clear()
        self.client.remove_bucket(self.bucket)


def minio_client(infra: InfraSettings) -> Minio:
    """A minio client for the S3 server the settings point at."""
    return Minio(
        infra.s3_endpoint,
        access_key=infra.s3_access_key.get_secret_value(),
        secret_key=infra.s3_secret_key.get_secret_value(),
        secure=infra.s3_secure,
        region=infra.s3_region,
    )


def minio_store(infra: InfraSettings) -> MinioObjectStore:
    """The object store the settings point at, with its bucket created."""
    store = MinioObjectStore(minio_client(infra), infra.s3_bucket)
    store.ensure_bucket()
    return store


def store_for_bucket(store: ObjectStore, bucket: str) -> ObjectStore:
    """The same S3 server on another bucket; ValueError when ``store`` cannot reach other buckets."""
    if getattr(store, "bucket", bucket) == bucket:
        return store
    if isinstance(store, MinioObjectStore):
        return MinioObjectStore(store.client, bucket)
    raise ValueError(f"bucket {bucket!r} is not reachable from this store")


def download_prefix(store: ObjectStore, prefix: str, dest: Path) -> list[Path]:
    """Copy every object under a prefix into a folder, keeping relative names."""
    written = []
    for key in store.list_keys(prefix):
        target = dest / key[len(prefix):].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get_bytes(key))
        written.append(target)
    return written
