"""The shared word-label alignment: whitespace words, first word pieces, BIO tags to entity spans."""

from __future__ import annotations

import pytest
from streamtune_shared.word_labels import (
    IGNORE_INDEX,
    align_word_labels,
    decode_entities,
    first_pieces,
    readable_pieces,
    split_tag,
    whitespace_words,
    word_tags,
)


def _spans(text: str, tags: list[str], scores: list[float] | None = None):
    words = whitespace_words(text)
    return decode_entities(text, words, tags, scores or [1.0] * len(tags))


def test_whitespace_words_are_character_offsets():
    text = "  APC  gene\tmutation\n"
    assert [text[s:e] for s, e in whitespace_words(text)] == ["APC", "gene", "mutation"]
    assert whitespace_words(text)[0] == (2, 5)
    assert whitespace_words("   ") == []


def test_first_pieces_pick_the_first_token_of_each_word():
    # [CLS] hello wor ##ld , [SEP] [PAD]
    assert first_pieces([None, 0, 1, 1, 1, None, None]) == {0: 1, 1: 2}
    assert first_pieces([None, None]) == {}


def test_a_word_opening_with_punctuation_lives_at_its_first_readable_piece():
    # [CLS] > ann lee ( « bo » [SEP]: ">Ann" and "«Bo»" open with punctuation; "(" has no letter at all
    word_ids = [None, 0, 0, 1, 2, 3, 3, 3, None]
    readable = readable_pieces(["[CLS]", ">", "ann", "lee", "(", "«", "bo", "»", "[SEP]"])
    assert readable == [True, False, True, True, False, False, True, False, True]
    assert first_pieces(word_ids, readable) == {0: 2, 1: 3, 2: 4, 3: 6}
    assert first_pieces(word_ids) == {0: 1, 1: 3, 2: 4, 3: 5}  # without the vocabulary: the first piece
    labels, starts = align_word_labels(word_ids, [1, 2, 0, 1], readable)
    assert labels == [IGNORE_INDEX, IGNORE_INDEX, 1, 2, 0, IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX]
    assert starts == [0, 1, 2, 3]


def test_word_tags_stay_aligned_when_a_word_has_no_piece():
    # "colon \u200b cancer": the tokenizer drops the zero-width space, so word 1 has no token.
    firsts = first_pieces([None, 0, 2, None])
    tags, scores = word_tags(firsts, 4, [0, 1, 2, 0], [0.5, 0.9, 0.8, 0.5], {0: "O", 1: "B-Disease", 2: "I-Disease"})
    assert tags == ["B-Disease", "O", "I-Disease", "O"]
    assert scores == [0.9, 0.0, 0.8, 0.0]


@pytest.mark.parametrize(("tag", "parts"), [
    ("B-Disease", ("B", "Disease")), ("I-Disease", ("I", "Disease")), ("O", ("O", None)),
    ("Disease", ("I", "Disease")), ("B-", ("I", "B-")),
])
def test_split_tag(tag, parts):
    assert split_tag(tag) == parts


def test_multi_word_span_has_offsets_into_the_text_and_the_mean_score():
    text = "a homologue of the adenomatous  polyposis coli tumour ."
    tags = ["O", "O", "O", "O", "B-Disease", "I-Disease", "I-Disease", "I-Disease", "O"]
    scores = [0.9, 0.9, 0.9, 0.9, 0.8, 0.6, 0.7, 0.9, 0.9]
    (span,) = _spans(text, tags, scores)
    assert span.text == "adenomatous  polyposis coli tumour"
    assert text[span.start:span.end] == span.text
    assert span.label == "Disease"
    assert span.score == pytest.approx(0.75)


def test_i_without_b_opens_a_span():
    text = "patients with ataxia telangiectasia ."
    (span,) = _spans(text, ["O", "O", "I-Disease", "I-Disease", "O"])
    assert (span.text, span.label) == ("ataxia telangiectasia", "Disease")


def test_b_after_b_and_a_change_of_type_start_new_spans():
    text = "colon cancer breast cancer aspirin"
    spans = _spans(text, ["B-Disease", "I-Disease", "B-Disease", "I-Disease", "I-Drug"])
    assert [(s.text, s.label) for s in spans] == [
        ("colon cancer", "Disease"), ("breast cancer", "Disease"), ("aspirin", "Drug")]


def test_span_at_the_end_of_the_text_and_words_cut_by_truncation():
    text = "the word DMD ends here"
    assert [s.text for s in _spans(text, ["O", "O", "B-Disease"])] == ["DMD"]
    assert [s.text for s in _spans("x y", ["O", "B-Disease"])] == ["y"]


def test_no_entities_when_every_word_is_outside():
    assert _spans("nothing to see", ["O", "O", "O"]) == ()


def test_only_the_first_piece_of_each_word_carries_its_label():
    # [CLS] w0 w1a w1b w1c w2 [SEP]
    labels, starts = align_word_labels([None, 0, 1, 1, 1, 2, None], [0, 1, 2])
    assert labels == [IGNORE_INDEX, 0, 1, IGNORE_INDEX, IGNORE_INDEX, 2, IGNORE_INDEX]
    assert starts == [0, 1, 2]


def test_training_labels_sit_where_serving_reads_the_tags():
    # The same word ids: the tokens the trainer labels are the tokens the predictor reads.
    word_ids = [None, 0, 0, 1, None, 2, 2, 2, None]
    readable = [True, False, True, True, True, False, True, True, True]  # word 0 and word 2 open with punctuation
    labels, starts = align_word_labels(word_ids, [1, 0, 2], readable)
    firsts = first_pieces(word_ids, readable)
    assert [i for i, label in enumerate(labels) if label != IGNORE_INDEX] == sorted(firsts.values()) == [2, 3, 6]
    tags, _ = word_tags(firsts, 3, labels, [1.0] * len(labels), {0: "O", 1: "B-X", 2: "I-X"})
    assert tags == ["B-X", "O", "I-X"] and starts == [0, 1, 2]
