"""Rollout transitions: promote, roll back, pin, canary, shadow, auto-promotion; the state document's home."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from streamtune_shared.model_registry import RegistryLayout
from streamtune_shared.rollout import (
    RolloutRefused,
    ServingState,
    auto_promote,
    canary_bucket,
    end_canary,
    list_datasets,
    pin,
    promote,
    read_state,
    rollback,
    rollout_key,
    seed_state,
    start_canary,
    start_shadow,
    stop_shadow,
    unpin,
    write_state,
)
from streamtune_shared.testing import InMemoryObjectStore

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
V1, V2, V3 = "20261128T120000Z-aa", "20261129T120000Z-bb", "20261130T120000Z-cc"


def _state(version: str | None = V1, **changes) -> ServingState:
    return seed_state("notes", "ner", version, False, T0).model_copy(update=changes)


def test_promote_keeps_history_and_bumps_the_revision():
    promoted = promote(_state(), V2, T0 + timedelta(minutes=1))
    assert (promoted.version, promoted.history, promoted.revision) == (V2, (V1,), 2)
    assert promoted.changed_by == "promote" and promoted.updated_at == T0 + timedelta(minutes=1)
    with pytest.raises(RolloutRefused, match="already serves"):
        promote(promoted, V2, T0)


def test_promoting_another_model_starts_a_fresh_history():
    other = promote(_state(history=(V3,)), "v9", T0, model="ner-large")
    assert (other.model, other.version, other.history) == ("ner-large", "v9", ())


def test_rollback_returns_to_the_previous_primary_and_pins_it():
    rolled = rollback(promote(promote(_state(), V2, T0), V3, T0), T0)
    assert (rolled.version, rolled.history, rolled.pinned) == (V2, (V1,), True)
    with pytest.raises(RolloutRefused, match="no earlier version"):
        rollback(_state(), T0)


def test_new_versions_auto_promote_only_when_unpinned_and_newer():
    state = _state()
    assert auto_promote(state, "ner", V2, T0).version == V2
    assert auto_promote(state, "ner", "20261127T000000Z-old", T0) is None
    assert auto_promote(state, "other-model", V2, T0) is None
    pinned = pin(state, T0)
    assert auto_promote(pinned, "ner", V2, T0) is None
    assert auto_promote(_state(None), "ner", V1, T0).version == V1  # the first version of a seeded dataset


def test_unpin_follows_the_newest_version_again():
    pinned = pin(_state(), T0)
    assert unpin(pinned, T0, newest=V3).version == V3
    assert unpin(pinned, T0, newest=V1).version == V1 and not unpin(pinned, T0, newest=V1).pinned
    with pytest.raises(RolloutRefused, match="not pinned"):
        unpin(_state(), T0, newest=V3)


def test_canary_promote_and_abort():
    canaried = start_canary(_state(), V2, 0.1, T0)
    assert canaried.canary.version == V2 and canaried.versions() == {V1, V2}
    assert end_canary(canaried, T0, promote_it=True).version == V2
    assert end_canary(canaried, T0, promote_it=True).canary is None
    aborted = end_canary(canaried, T0, promote_it=False)
    assert (aborted.version, aborted.canary) == (V1, None)
    with pytest.raises(RolloutRefused, match="already the primary"):
        start_canary(_state(), V1, 0.1, T0)
    with pytest.raises(ValueError):
        start_canary(_state(), V2, 1.5, T0)


def test_shadow_runs_beside_the_primary_until_stopped():
    shadowed = start_shadow(_state(), V2, T0)
    assert shadowed.shadow.version == V2 and shadowed.versions() == {V1, V2}
    assert stop_shadow(shadowed, T0).shadow is None
    assert promote(shadowed, V2, T0).shadow is None  # the shadow became the primary


def test_canary_buckets_are_stable_and_uniform():
    buckets = [canary_bucket(f"e-{i}") for i in range(4000)]
    assert buckets == [canary_bucket(f"e-{i}") for i in range(4000)]
    assert 0.23 < sum(b < 0.25 for b in buckets) / len(buckets) < 0.27


def test_states_live_under_the_models_prefix_and_read_back():
    store, layout = InMemoryObjectStore(), RegistryLayout("reg/")
    write_state(store, layout, _state())
    write_state(store, layout, seed_state("pumps", "anomaly", None, True, T0))
    assert rollout_key(layout, "notes") == "reg/_rollout/notes.json"
    assert list_datasets(store, layout) == ["notes", "pumps"]
    assert read_state(store, layout, "notes") == _state()
    assert read_state(store, layout, "absent") is None
    store.put_bytes(rollout_key(layout, "broken"), b'{"dataset": 1}')
    with pytest.raises(ValueError, match="not valid"):
        read_state(store, layout, "broken")
    assert layout.model_names(store.list_keys("reg/")) == []  # the rollout folder is not a model
