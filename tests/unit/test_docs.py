"""docs/: the generated AsyncAPI and OpenAPI files match the code (`make docs` regenerates them)."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from streamtune_shared import streams
from streamtune_shared.asyncapi import OPERATIONS

ROOT = Path(__file__).resolve().parents[2]


def load_writer():
    spec = importlib.util.spec_from_file_location("write_docs", ROOT / "docs" / "write_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module_constant(service: str, module: str, name: str) -> str:
    """A string constant of a service module, read from its source (importing the trainer pulls in torch)."""
    tree = ast.parse((ROOT / "services" / service / f"streamtune_{service}" / f"{module}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{service}/{module}.py defines no {name}")


def consumer_groups() -> set[tuple[str, str]]:
    """(stream, group) of every consumer the services start, from their constants."""
    return {
        (streams.RAW, module_constant("ingestion", "handlers", "GROUP")),
        (streams.VALID, module_constant("anonymizer", "handlers", "ANONYMIZE_GROUP")),
        (streams.CLEAN, module_constant("anonymizer", "handlers", "SHARD_GROUP")),
        (streams.TRAIN_REQUESTS, module_constant("trainer", "handlers", "GROUP")),
        (streams.CLEAN, module_constant("predictor", "handlers", "GROUP")),
    }


@pytest.fixture(scope="module")
def writer():
    return load_writer()


@pytest.fixture(scope="module")
def generated(writer) -> dict[str, str]:
    return writer.documents()


def test_committed_docs_match_the_code(writer, generated):
    stale = writer.stale(generated)
    assert not stale, f"{', '.join(f'docs/{n}' for n in stale)} stale: run make docs"


def test_the_asyncapi_file_names_the_consumer_groups_the_services_use(generated):
    document = yaml.safe_load(generated["asyncapi.yaml"])
    groups = {(document["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"], op["x-consumer-group"])
              for op in document["operations"].values() if "x-consumer-group" in op}
    assert groups == consumer_groups()
    assert groups == {(o.stream, o.group) for o in OPERATIONS if o.group is not None}


@pytest.mark.parametrize(("service", "method", "path"), [
    ("ingestion", "post", "/events"), ("predictor", "post", "/predict"), ("anonymizer", "get", "/privacy/devices"),
])
def test_each_http_api_is_exported_with_its_route(generated, service, method, path):
    document = json.loads(generated[f"openapi/{service}.json"])
    assert document["openapi"].startswith("3.")
    assert method in document["paths"][path]
