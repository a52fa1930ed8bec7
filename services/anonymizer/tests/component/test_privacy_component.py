"""Generalization, DP on readings with a per-device budget, the budget route, and k-anonymous shards,
wired by build_service on the in-memory bus, object store and budget ledger.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import REGISTRY
from pydantic import SecretStr
from streamtune_anonymizer.app import AnonymizerDeps, build_service
from streamtune_anonymizer.budget import Charge, Grant, to_micro, window_index
from streamtune_anonymizer.config import AnonymizerSettings
from streamtune_anonymizer.domain import pseudonym
from streamtune_anonymizer.dp import BUDGET_SPENT_NOTE
from streamtune_shared import streams
from streamtune_shared.bus import Entry
from streamtune_shared.schemas import ShardManifest
from streamtune_shared.settings import InfraSettings
from streamtune_shared.testing import InMemoryBus, InMemoryObjectStore

KEY = "component-key-0123456789abcdefghijklmnopqrstuvwxyz"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DP = {"pumps": {"mechanism": "laplace", "epsilon_per_event": 0.5, "sensors": {"temp": [0, 100]},
                "budget_epsilon": 2.0, "window_s": 3600}}


class InMemoryLedger:
    """The Redis ledger's rules in a dict: fixed windows, one charge per event id, never past the budget."""

    def __init__(self) -> None:
        self.spent_micro: dict[tuple[str, str, int], int] = defaultdict(int)
        self.charged: set[tuple[str, str, int, str]] = set()

    async def spend(self, charges: Sequence[Charge], now: datetime) -> list[Grant]:
        grants = []
        for c in charges:
            window = (c.dataset, c.device, window_index(now, c.window_s))
            cost = to_micro(c.epsilon, round_up=True)
            fits = self.spent_micro[window] + cost <= to_micro(c.budget_epsilon, round_up=False)
            if (*window, c.event_id) not in self.charged and fits:
                self.spent_micro[window] += cost
                self.charged.add((*window, c.event_id))
            grants.append(Grant((*window, c.event_id) in self.charged, self.spent_micro[window] / 1e6))
        return grants

    async def spent(self, dataset: str, device: str, window_s: int, now: datetime) -> float:
        return self.spent_micro[(dataset, device, window_index(now, window_s))] / 1e6


def _service(**overrides):
    settings = AnonymizerSettings(infra=InfraSettings(s3_access_key="a", s3_secret_key="b"),
                                  pseudonym_key=SecretStr(KEY), **overrides)
    deps = AnonymizerDeps(bus=InMemoryBus(), store=InMemoryObjectStore(), budget=InMemoryLedger(), now=lambda: NOW)
    return build_service(settings, deps), deps


def _event(i: int, *, device: str = "pump-7", temp: float | None = 61.5, dataset: str = "pumps", **extra) -> dict:
    return {"schema_version": 1, "event_id": f"ev-{i}", "device_id": device, "dataset": dataset,
            "ts": (NOW + timedelta(seconds=i)).isoformat(), "readings": {"temp": temp}, "label": 0,
            "ingested_at": NOW.isoformat(), **extra}


def _entries(events: list[dict], first: int = 1) -> list[Entry]:
    return [Entry(id=f"{first + i}-0", fields={b"payload": json.dumps(e).encode()}) for i, e in enumerate(events)]


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_readings_are_noised_until_the_device_budget_is_spent_then_suppressed_with_a_note():
    service, deps = _service(dp=DP)
    device = pseudonym(KEY.encode(), "device_id", "pump-7")
    suppressed_before = _metric("streamtune_anonymizer_dp_readings_total", outcome="suppressed_budget")
    # A budget of 2.0 at 0.5 per event: four events of pump-7 pass noised, the fifth and sixth do not.
    events = [_event(i) for i in range(6)] + [_event(9, device="pump-8"), _event(10, dataset="notes")]
    await service.anonymizer.process(_entries(events))
    clean = {c["event_id"]: c for c in deps.bus.messages(streams.CLEAN)}
    assert len(clean) == 8 and len(deps.bus.acked[(streams.VALID, "anonymizer")]) == 8
    noised = [clean[f"ev-{i}"]["readings"]["temp"] for i in range(4)]
    assert len(set(noised)) == 4 and 61.5 not in noised
    for i in (4, 5):
        assert clean[f"ev-{i}"]["readings"] == {} and clean[f"ev-{i}"]["notes"] == [BUDGET_SPENT_NOTE]
    assert clean["ev-9"]["readings"]["temp"] != 61.5, "another device has its own budget"
    assert clean["ev-10"]["readings"] == {"temp": 61.5}, "a dataset without DP keeps its readings"
    assert _metric("streamtune_anonymizer_dp_epsilon_spent", dataset="pumps", device=device) == 2.0
    assert _metric("streamtune_anonymizer_dp_readings_total", outcome="suppressed_budget") - suppressed_before == 2


async def test_a_redelivered_event_is_not_charged_twice():
    service, deps = _service(dp=DP)
    entries = _entries([_event(1)])
    await service.anonymizer.process(entries)
    await service.anonymizer.process(entries)
    device = pseudonym(KEY.encode(), "device_id", "pump-7")
    assert await deps.budget.spent("pumps", device, 3600, NOW) == 0.5
    assert len(deps.bus.messages(streams.CLEAN)) == 1


async def test_the_budget_route_pseudonymizes_the_device_and_reports_each_dp_dataset():
    service, _ = _service(dp=DP)
    await service.anonymizer.process(_entries([_event(1), _event(2)]))
    device = pseudonym(KEY.encode(), "device_id", "pump-7")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://anon") as client:
        by_raw = await client.get("/privacy/devices", params={"device_id": "pump-7"})
        by_pseudonym = await client.get("/privacy/devices", params={"pseudonym": device})
        neither = await client.get("/privacy/devices")
    assert by_raw.status_code == 200 and by_raw.json() == by_pseudonym.json()
    assert by_raw.json() == {"device": device, "datasets": {
        "pumps": {"spent_epsilon": 1.0, "budget_epsilon": 2.0, "window_s": 3600}}}
    assert "pump-7" not in by_raw.text
    assert neither.status_code == 400


async def test_generalized_fields_reach_events_clean_coarse_and_other_meta_follows_the_policy():
    service, deps = _service(generalization={"pumps": {"ts": "hour", "gps": {"decimals": 2}, "buckets": {"age": 10}}})
    meta = {"lat": 52.51739, "lon": 13.40501, "gps": "52.51739,13.40501", "age": 37, "operator": "Jane Roe"}
    await service.anonymizer.process(_entries([_event(1, ts=(NOW + timedelta(minutes=47)).isoformat(), meta=meta)]))
    [clean] = deps.bus.messages(streams.CLEAN)
    assert clean["ts"].startswith("2026-11-28T12:00:00")
    assert clean["meta"]["lat"] == 52.51 and clean["meta"]["lon"] == 13.4 and clean["meta"]["age"] == 30
    assert "gps" not in clean["meta"], "the default policy still drops gps"
    assert clean["meta"]["operator"].startswith("ps_")


async def test_a_k_anonymous_dataset_stores_its_report_in_the_manifest():
    k_rule = {"pumps": {"quasi_identifiers": ["ts"], "k": 3, "max_suppressed_fraction": 0.1}}
    service, deps = _service(generalization={"pumps": {"ts": "minute"}}, k_anonymity=k_rule, shard_max_rows=10)
    # Nine events in nine minutes of one hour and one a day later: one step to hours, then one row may be dropped.
    events = [_event(i, ts=(NOW + timedelta(minutes=i)).isoformat()) for i in range(9)]
    events.append(_event(99, ts=(NOW + timedelta(days=1)).isoformat()))
    await service.anonymizer.process(_entries(events))
    clean = deps.bus.messages(streams.CLEAN)
    await service.shard_writer.process(_entries(clean))
    [key] = deps.store.list_keys("datasets/pumps/manifests/")
    manifest = ShardManifest.model_validate_json(deps.store.get_bytes(key))
    assert manifest.rows == 9
    assert manifest.k_anonymity is not None
    assert (manifest.k_anonymity.generalization_level, manifest.k_anonymity.suppressed_rows) == (1, 1)
    assert len(deps.bus.acked[(streams.CLEAN, "anonymizer-shards")]) == 10
