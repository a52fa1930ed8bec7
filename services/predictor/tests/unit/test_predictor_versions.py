"""Version choice: which version serves at startup, and which announced versions replace it."""

from __future__ import annotations

from streamtune_predictor.versions import reload_decision, startup_candidates


def test_startup_takes_the_newest_version_unless_pinned():
    committed = ["20261127T000000Z-cc", "20261128T120000Z-aa", "20261126T000000Z-ee"]
    assert startup_candidates(committed, None) == ["20261128T120000Z-aa", "20261127T000000Z-cc",
                                                   "20261126T000000Z-ee"]
    assert startup_candidates(committed, "20261127T000000Z-cc") == ["20261127T000000Z-cc"]
    assert startup_candidates(committed, "20250101T000000Z-gone") == []
    assert startup_candidates(committed, None, refused={"20261128T120000Z-aa"})[0] == "20261127T000000Z-cc"


def test_reload_only_to_newer_versions_and_never_past_a_pin():
    assert reload_decision("20261129T000000Z-b", "20261128T000000Z-a", None) == "load"
    assert reload_decision("20261127T000000Z-z", "20261128T000000Z-a", None) == "not_newer"
    assert reload_decision("20261128T000000Z-a", "20261128T000000Z-a", None) == "not_newer"
    assert reload_decision("20261129T000000Z-b", None, None) == "load"
    assert reload_decision("20261129T000000Z-b", "20261128T000000Z-a", "20261128T000000Z-a") == "pinned"
    assert reload_decision("20261128T000000Z-a", None, "20261128T000000Z-a") == "load"
