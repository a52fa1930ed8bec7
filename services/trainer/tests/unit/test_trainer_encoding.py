"""Tokenization: labels on first word pieces, truncation, dynamic padding, seeded shuffling."""

from __future__ import annotations

from streamtune_trainer.domain import SEQUENCE_CLASSIFICATION, TOKEN_CLASSIFICATION, Example, LabelMap
from streamtune_trainer.encoding import (
    IGNORE_INDEX,
    EncodedExample,
    batch_order,
    collate,
    encode_examples,
    epoch_generator,
    iterate_batches,
)
from streamtune_trainer.evaluation import word_tags

NER = LabelMap(TOKEN_CLASSIFICATION, ("O", "B-Disease", "I-Disease"))


def test_real_word_pieces_are_aligned_with_the_bio_tags(minilm_tokenizer):
    example = Example("n1", "familial adenomatous polyposis .", ("O", "B-Disease", "I-Disease", "O"))
    [encoded] = encode_examples(minilm_tokenizer, [example], NER, max_length=64)
    pieces = minilm_tokenizer.convert_ids_to_tokens(list(encoded.input_ids))
    labeled = [(piece, label) for piece, label in zip(pieces, encoded.labels, strict=True) if label != IGNORE_INDEX]
    # "adenomatous" splits into several pieces; only its first one is labeled B-Disease.
    assert len(pieces) > 6
    assert [label for _, label in labeled] == [0, 1, 2, 0]
    assert labeled[1][0] == minilm_tokenizer.tokenize("adenomatous")[0]
    assert encoded.labels[0] == IGNORE_INDEX and encoded.labels[-1] == IGNORE_INDEX
    assert encoded.word_indices == (0, 1, 2, 3) and encoded.word_count == 4


def test_a_word_opening_with_punctuation_is_labeled_at_its_first_letter_piece(minilm_tokenizer):
    # Where the predictor and the anonymizer read it (streamtune_shared.word_labels): "ann", not ">".
    person = LabelMap(TOKEN_CLASSIFICATION, ("O", "B-PERSON", "I-PERSON"))
    example = Example("p", ">Ann Lee ( wrote", ("B-PERSON", "I-PERSON", "O", "O"))
    [encoded] = encode_examples(minilm_tokenizer, [example], person, max_length=32)
    pieces = minilm_tokenizer.convert_ids_to_tokens(list(encoded.input_ids))
    labeled = [(piece, label) for piece, label in zip(pieces, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert labeled == [("ann", 1), ("lee", 2), ("(", 0), ("wrote", 0)]
    assert encoded.word_indices == (0, 1, 2, 3)


def test_truncation_cuts_tokens_and_the_cut_words_score_as_outside(minilm_tokenizer):
    words = ["asthma"] + ["word"] * 30
    tags = ("B-Disease",) + ("O",) * 30
    [encoded] = encode_examples(minilm_tokenizer, [Example("n", " ".join(words), tags)], NER, max_length=8)
    assert len(encoded.input_ids) == 8 and len(encoded.labels) == 8
    assert encoded.word_count == 31 and len(encoded.word_indices) == 6
    predicted = word_tags([1, 0, 0, 0, 0, 0], encoded, NER.id2label)
    assert predicted == ["B-Disease"] + ["O"] * 30


def test_batches_are_padded_to_their_longest_example_not_to_max_length():
    short = EncodedExample((101, 5, 102), (IGNORE_INDEX, 1, IGNORE_INDEX))
    long = EncodedExample((101, 5, 6, 7, 102), (IGNORE_INDEX, 1, 2, 0, IGNORE_INDEX))
    batch = collate([short, long], pad_token_id=0, token_labels=True)
    assert batch["input_ids"].shape == (2, 5)
    assert batch["input_ids"][0].tolist() == [101, 5, 102, 0, 0]
    assert batch["attention_mask"].sum(dim=1).tolist() == [3, 5]
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
    widths = {b["input_ids"].shape[1] for b in iterate_batches([short, short, long], 2, 0, True)}
    assert widths == {3, 5}


def test_classification_batches_have_one_label_per_example(minilm_tokenizer):
    label_map = LabelMap(SEQUENCE_CLASSIFICATION, ("fault", "normal"))
    encoded = encode_examples(minilm_tokenizer, [Example("a", "pump vibrates hard", "fault"),
                                                  Example("b", "ok", "normal")], label_map, max_length=16)
    batch = collate(encoded, minilm_tokenizer.pad_token_id, token_labels=False)
    assert batch["labels"].tolist() == [0, 1]
    assert batch["input_ids"].shape == (2, max(len(e.input_ids) for e in encoded))


def test_shuffling_is_seeded_per_epoch():
    first = batch_order(50, 8, epoch_generator(seed=42, epoch=1))
    assert first == batch_order(50, 8, epoch_generator(seed=42, epoch=1))
    assert first != batch_order(50, 8, epoch_generator(seed=42, epoch=2))
    assert first != batch_order(50, 8, epoch_generator(seed=7, epoch=1))
    assert sorted(i for batch in first for i in batch) == list(range(50))
    assert batch_order(5, 2, None) == [[0, 1], [2, 3], [4]]
