"""Run-time rollout in one predictor: promote, roll back, canary and shadow, applied between batches."""

from __future__ import annotations

from collections import Counter

import pytest
from streamtune_predictor.app import PredictorDeps, build_service
from streamtune_predictor.config import PredictorSettings
from streamtune_shared.bus import Entry
from streamtune_shared.rollout import end_canary, promote, rollback, start_canary, start_shadow
from streamtune_shared.schemas import Prediction
from streamtune_shared.settings import InfraSettings
from streamtune_shared.testing import InMemoryBus, InMemoryObjectStore, InMemoryRolloutControl

V1, V2 = "20261128T120000Z-aaaa1111", "20261129T120000Z-bbbb2222"
TEXT = "Germline mutations in the adenomatous polyposis coli gene ."


@pytest.fixture
async def setup(model_folder, publish):
    """A predictor serving V1 (tags one span per text) with V2 (tags nothing) committed but pinned away."""
    bus, store = InMemoryBus(), InMemoryObjectStore()
    publish(store, model_folder("ner-span"), "disease-ner", V1)
    publish(store, model_folder("ner-none"), "disease-ner", V2)
    control = InMemoryRolloutControl(store)
    config = PredictorSettings(infra=InfraSettings(s3_access_key="k", s3_secret_key="s"),
                               models={"clinical-notes": "disease-ner"}, pinned={"disease-ner": V1})
    service = build_service(config, PredictorDeps(bus=bus, store=store, control=control))
    await service.follower.sync()
    return service, bus, control


async def _change(service, control, transition) -> None:
    """What `streamtune models ...` does: change the state under the lock, then the notice reaches the follower."""
    await control.change("clinical-notes", lambda current, now: transition(current, now))
    await service.follower.on_control(control.notices[-1].model_dump_json().encode())


async def _predict(service, bus, make_event, prefix: str, n: int) -> list[Prediction]:
    entries = [Entry(id=f"{prefix}-{i}", fields={b"payload": make_event(f"{prefix}{i}", TEXT)}) for i in range(n)]
    before = len(bus.messages("predictions"))
    await service.handler.process(entries)
    return [Prediction.model_validate(m) for m in bus.messages("predictions")[before:]]


async def test_seeds_pin_the_first_state_and_every_change_is_acknowledged(setup, make_event):
    service, bus, control = setup
    assert service.registry.route("clinical-notes").state.pinned
    assert control.applied_revisions == {"clinical-notes": 1}
    await _change(service, control, lambda s, now: promote(s, V2, now))
    assert control.applied_revisions == {"clinical-notes": 2}
    assert {p.version for p in await _predict(service, bus, make_event, "a", 5)} == {V2}
    await _change(service, control, rollback)
    assert control.applied_revisions == {"clinical-notes": 3}
    predictions = await _predict(service, bus, make_event, "b", 5)
    assert {(p.version, p.rollout) for p in predictions} == {(V1, "primary")}


async def test_a_canary_takes_a_stable_share_and_both_sides_are_tagged(setup, make_event):
    service, bus, control = setup
    await _change(service, control, lambda s, now: start_canary(s, V2, 0.3, now))
    first = await _predict(service, bus, make_event, "c", 200)
    roles = Counter((p.version, p.rollout) for p in first)
    assert set(roles) == {(V1, "primary"), (V2, "canary")}
    assert 0.2 < roles[(V2, "canary")] / 200 < 0.4
    # The same events go to the same side again; every event has exactly one prediction.
    again = await _predict(service, bus, make_event, "c", 200)
    assert [(p.event_id, p.version) for p in again] == [(p.event_id, p.version) for p in first]
    assert len({p.event_id for p in first}) == 200
    await _change(service, control, lambda s, now: end_canary(s, now, promote_it=True))
    assert {p.version for p in await _predict(service, bus, make_event, "d", 20)} == {V2}


async def test_a_shadow_predicts_a_copy_to_its_own_stream_with_agreement(setup, make_event):
    service, bus, control = setup
    await _change(service, control, lambda s, now: start_shadow(s, V2, now))
    primary = await _predict(service, bus, make_event, "s", 10)
    assert {(p.version, p.rollout) for p in primary} == {(V1, "primary")}
    shadow = [Prediction.model_validate(m) for m in bus.messages("predictions.shadow")]
    assert sorted(p.event_id for p in shadow) == sorted(p.event_id for p in primary)
    assert {(p.version, p.rollout) for p in shadow} == {(V2, "shadow")}
    # V1 finds one span per text, V2 none: they never agree.
    assert control.shadow[("clinical-notes", V2)] == [10, 0.0]
    assert len(bus.acked[("events.clean", "predictor")]) == 10


async def test_a_promotion_to_a_refused_version_leaves_the_old_one_serving_unacknowledged(
        setup, model_folder, publish, make_event):
    service, bus, control = setup
    bad = "20261130T120000Z-cccc3333"
    publish(service.runtime.store, model_folder("ner-none"), "disease-ner", bad, tamper="model.safetensors")
    await _change(service, control, lambda s, now: promote(s, bad, now))
    assert control.applied_revisions == {"clinical-notes": 1}
    assert {p.version for p in await _predict(service, bus, make_event, "r", 3)} == {V1}
