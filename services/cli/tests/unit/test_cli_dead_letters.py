"""Replaying dead letters: which are selected, where their original bytes go, and which cannot be replayed."""

from __future__ import annotations

import json

from streamtune_cli.dead_letters import parse_letter, plan_replay
from streamtune_shared import streams
from streamtune_shared.bus import dead_letter_for_bytes


def _stored(entry_id: str, raw: bytes, **fields):
    letter = dead_letter_for_bytes(raw, **fields)
    return parse_letter(entry_id, {b"payload": letter.model_dump_json().encode()})


ORIGINAL = b'{"schema_version": 1, "event_id": "e1", \xff}'  # not even UTF-8: bytes must survive as they are


def test_replay_sends_the_original_bytes_back_to_the_source_stream() -> None:
    letters = [_stored("1-0", ORIGINAL, stage="ingestion", reason="not UTF-8", source_stream=streams.RAW)]
    replays, skips = plan_replay(letters)
    assert skips == []
    assert [(r.entry_id, r.target, r.payload) for r in replays] == [("1-0", streams.RAW, ORIGINAL)]


def test_filters_pick_by_stage_reason_text_and_id() -> None:
    letters = [
        _stored("1-0", b"a", stage="ingestion", reason="Schema error", source_stream=streams.RAW),
        _stored("2-0", b"b", stage="anonymizer", reason="schema error", source_stream=streams.VALID),
        _stored("3-0", b"c", stage="ingestion", reason="not JSON", source_stream=streams.RAW),
    ]
    assert [r.entry_id for r in plan_replay(letters, stage="ingestion")[0]] == ["1-0", "3-0"]
    assert [r.entry_id for r in plan_replay(letters, reason="SCHEMA")[0]] == ["1-0", "2-0"]
    assert [r.entry_id for r in plan_replay(letters, ids={"2-0"})[0]] == ["2-0"]
    assert [r.target for r in plan_replay(letters, to=streams.RAW)[0]] == [streams.RAW] * 3


def test_letters_that_cannot_be_replayed_are_skipped_with_a_reason() -> None:
    letters = [
        _stored("1-0", b"x" * 300_000, stage="ingestion", reason="too large", source_stream=streams.RAW),
        _stored("2-0", b"body", stage="ingestion-http", reason="not JSON"),
        parse_letter("3-0", {b"payload": json.dumps({"not": "a letter"}).encode()}),
    ]
    replays, skips = plan_replay(letters)
    assert replays == []
    assert [(s.entry_id, s.why) for s in skips] == [
        ("1-0", "original bytes were truncated when dead-lettered"),
        ("2-0", "the letter names no source stream (use --to)"),
        ("3-0", "not a dead letter"),
    ]
    assert [r.entry_id for r in plan_replay(letters[1:2], to=streams.RAW)[0]] == ["2-0"]
