"""Splitting POST /events bodies into the producer's own bytes per event."""

from __future__ import annotations

import pytest
from streamtune_ingestion.http_body import BodyNotJSON, TooManyItems, split_events_body


def test_an_array_is_split_into_the_exact_bytes_of_each_item():
    body = b' [ {"a": 1, "b": [1, 2]} ,\n{"c": "\xc3\xa9"}, 42 ] '
    assert split_events_body(body, 10) == [b'{"a": 1, "b": [1, 2]}', b'{"c": "\xc3\xa9"}', b"42"]


def test_a_single_object_is_one_item():
    assert split_events_body(b'\n{"a": NaN}\n', 10) == [b'{"a": NaN}']


def test_items_keep_duplicate_keys_for_the_event_check_to_find():
    assert split_events_body(b'[{"a": 1, "a": 2}]', 10) == [b'{"a": 1, "a": 2}']


def test_an_empty_array_has_no_items():
    assert split_events_body(b"[ ]", 10) == []


@pytest.mark.parametrize("body", [b"", b"nope", b"[1, 2", b"[1,]", b"[1 2]", b"[1] x", b'{"a": 1} {}', b"\xff[]",
                                  b"[" * 5000 + b"]" * 5000])
def test_bodies_that_are_not_json_are_refused(body):
    with pytest.raises(BodyNotJSON, match="body is not"):
        split_events_body(body, 10)


def test_more_items_than_allowed_are_refused():
    assert len(split_events_body(b"[" + b",".join([b"{}"] * 3) + b"]", 3)) == 3
    with pytest.raises(TooManyItems, match="more than 3 events"):
        split_events_body(b"[" + b",".join([b"{}"] * 4) + b"]", 3)
