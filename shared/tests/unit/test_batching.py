"""Forwards cut by rows and padded tokens."""

from __future__ import annotations

import pytest
from streamtune_shared.batching import token_budget_chunks

pytestmark = pytest.mark.unit


def test_chunks_are_shortest_first_and_cover_every_index_once():
    lengths = [30, 5, 12, 5, 80, 1, 12]
    chunks = token_budget_chunks(lengths, max_rows=64, max_tokens=40)
    flat = [i for chunk in chunks for i in chunk]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)


def test_a_chunk_padded_to_its_longest_row_stays_within_the_budget_unless_it_is_one_long_row():
    lengths = [7, 3, 9, 100, 4, 4, 8, 50, 2]
    for budget in (10, 16, 64, 128):
        for chunk in token_budget_chunks(lengths, max_rows=64, max_tokens=budget):
            assert len(chunk) * max(lengths[i] for i in chunk) <= budget or len(chunk) == 1


def test_without_a_token_budget_only_the_row_count_cuts():
    assert [len(c) for c in token_budget_chunks([5] * 10, max_rows=4, max_tokens=None)] == [4, 4, 2]
    assert token_budget_chunks([], max_rows=4, max_tokens=16) == []
    with pytest.raises(ValueError, match="max_rows"):
        token_budget_chunks([1], max_rows=0, max_tokens=None)
