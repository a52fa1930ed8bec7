"""Training-split augmentation: NER mention replacement and masking, classification masking and swap, sensor windows."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from streamtune_shared.adaptation import AugmentationOptions
from streamtune_trainer.anomaly_data import UNLABELED, WindowSet
from streamtune_trainer.augmentation import (
    Mention,
    augment_examples,
    augment_training_split,
    augment_window_set,
    entity_mentions,
    mask_token_of,
    mask_words,
    mention_pool,
    replace_mentions,
    swap_adjacent,
    time_warp,
    window_copies,
)
from streamtune_trainer.domain import (
    OUTSIDE,
    SEQUENCE_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
    DatasetSplits,
    Example,
    LabelMap,
)

MASK = "[MASK]"
TRAIN = (
    Example("t1", "patients with cystic fibrosis improved", ("O", "O", "B-Disease", "I-Disease", "O")),
    Example("t2", "asthma was frequent in the cohort", ("B-Disease", "O", "O", "O", "O", "O")),
    Example("t3", "no sign of breast and ovarian cancer today", ("O", "O", "O", "B-Disease", "I-Disease", "I-Disease",
                                                                 "I-Disease", "O")),
    Example("t4", "BRCA1 carriers had colon cancer", ("B-Gene", "O", "O", "B-Disease", "I-Disease")),
)
DEV = (Example("d1", "a case of huntington disease", ("O", "O", "O", "B-Disease", "I-Disease")),)
NER_LABELS = LabelMap(TOKEN_CLASSIFICATION, ("O", "B-Disease", "B-Gene", "I-Disease"))


def _mention_words(example: Example) -> list[tuple[tuple[str, ...], str]]:
    words = example.words
    return [(tuple(words[m.start:m.end]), m.kind) for m in entity_mentions(example.label)]


def _valid_bio(tags: tuple[str, ...]) -> bool:
    previous = OUTSIDE
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def test_entity_mentions_are_the_bio_spans_and_a_stray_inside_tag_starts_one():
    tags = ("B-Disease", "I-Disease", "O", "I-Disease", "B-Gene", "B-Gene", "I-Gene")
    assert entity_mentions(tags) == [Mention(0, 2, "Disease"), Mention(3, 4, "Disease"), Mention(4, 5, "Gene"),
                                     Mention(5, 7, "Gene")]


def test_mention_pool_holds_each_training_mention_once_by_type():
    pool = mention_pool([*TRAIN, TRAIN[0]])
    assert pool == {"Disease": (("cystic", "fibrosis"), ("asthma",), ("breast", "and", "ovarian", "cancer"),
                                ("colon", "cancer")), "Gene": (("BRCA1",),)}


def test_replaced_mentions_keep_words_and_tags_aligned_and_the_words_outside_them():
    pool = mention_pool(TRAIN)
    for seed in range(30):
        words, tags = replace_mentions(TRAIN[2].words, TRAIN[2].label, pool, 1.0, random.Random(seed))
        assert len(words) == len(tags) and _valid_bio(tuple(tags))
        [(mention, kind)] = _mention_words(Example("x", " ".join(words), tuple(tags)))
        assert kind == "Disease" and mention in pool["Disease"] and mention != ("breast", "and", "ovarian", "cancer")
        assert words[:3] == ["no", "sign", "of"] and words[-1] == "today"


@pytest.mark.parametrize("inside", ["I-Disease", "Disease"])
def test_a_replaced_mention_keeps_the_datasets_tag_scheme(inside):
    # IO tags (I-X only) or bare tags (X): a copy must not write a B-X the label map has never seen.
    train = [Example("a", "cystic fibrosis improved", (inside, inside, "O")), Example("b", "asthma", (inside,))]
    assert entity_mentions(train[0].label) == [Mention(0, 2, "Disease")]
    pool = mention_pool(train)
    words, tags = replace_mentions(train[1].words, train[1].label, pool, 1.0, random.Random(0))
    assert words == ["cystic", "fibrosis"] and tags == [inside, inside]


def test_augmented_ner_copies_only_use_training_mentions_of_the_same_type():
    options = AugmentationOptions(copies=3, mention_replacement=1.0, token_mask=0.0)
    augmented = augment_examples(TRAIN, TOKEN_CLASSIFICATION, options, MASK, seed=7)
    pool = mention_pool(TRAIN)
    copies = augmented[len(TRAIN):]
    assert augmented[:len(TRAIN)] == TRAIN and len(copies) == 3 * len(TRAIN)
    assert any(c.text != TRAIN[i % len(TRAIN)].text for i, c in enumerate(copies))
    for copy in copies:
        assert len(copy.words) == len(copy.label) and _valid_bio(copy.label)
        for mention, kind in _mention_words(copy):
            assert mention in pool[kind]
            assert mention != ("huntington", "disease")  # a dev mention never leaks into training


def test_masking_never_touches_an_entity_word():
    options = AugmentationOptions(copies=10, mention_replacement=0.0, token_mask=0.5)
    augmented = augment_examples(TRAIN, TOKEN_CLASSIFICATION, options, MASK, seed=3)
    masked = 0
    for copy in augmented[len(TRAIN):]:
        original = next(e for e in TRAIN if copy.event_id.startswith(f"{e.event_id}#"))
        assert copy.label == original.label
        for word, before, tag in zip(copy.words, original.words, copy.label, strict=True):
            if tag != OUTSIDE:
                assert word == before
            elif word != before:
                assert word == MASK
                masked += 1
    assert masked > 0


def test_augmentation_is_seeded_and_names_each_copy():
    options = AugmentationOptions(copies=2)
    first = augment_examples(TRAIN, TOKEN_CLASSIFICATION, options, MASK, seed=11)
    assert first == augment_examples(TRAIN, TOKEN_CLASSIFICATION, options, MASK, seed=11)
    assert first != augment_examples(TRAIN, TOKEN_CLASSIFICATION, options, MASK, seed=12)
    assert len({e.event_id for e in first}) == len(first)
    assert {e.event_id for e in first[len(TRAIN):]} == {f"t{i}#aug{c}" for i in range(1, 5) for c in (1, 2)}


def test_only_the_training_split_is_augmented():
    splits = DatasetSplits(TRAIN, DEV, DEV, NER_LABELS, 0)
    augmented = augment_training_split(splits, AugmentationOptions(copies=2), _Tokenizer(MASK), seed=1)
    assert len(augmented.train) == 3 * len(TRAIN) and augmented.dev == DEV and augmented.test == DEV
    assert augment_training_split(splits, None, _Tokenizer(MASK), seed=1) is splits


def test_classification_copies_keep_the_label_and_only_swap_neighbours_or_mask():
    examples = tuple(Example(f"c{i}", "pump vibration rose sharply after the valve closed", "fault") for i in range(20))
    options = AugmentationOptions(copies=1, token_mask=0.2, token_swap=0.3)
    copies = augment_examples(examples, SEQUENCE_CLASSIFICATION, options, MASK, seed=5)[len(examples):]
    words = examples[0].words
    changed = 0
    for copy in copies:
        assert copy.label == "fault" and len(copy.words) == len(words)
        unmasked = Counter(w for w in copy.words if w != MASK)
        assert not unmasked - Counter(words)
        changed += copy.text != examples[0].text
    assert changed > 0


def test_swap_moves_each_word_at_most_one_place():
    words = [str(i) for i in range(50)]
    swapped = swap_adjacent(words, 0.5, random.Random(0))
    assert sorted(swapped, key=int) == words and swapped != words
    assert all(abs(int(word) - i) <= 1 for i, word in enumerate(swapped))


def test_mask_words_keeps_the_protected_words():
    words = ["a", "b", "c", "d"]
    assert mask_words(words, 1.0, MASK, random.Random(0), keep=[True, False, True, False]) == ["a", MASK, "c", MASK]


class _Tokenizer:
    def __init__(self, mask_token: str | None, unk_token: str | None = "[UNK]") -> None:
        self.mask_token, self.unk_token = mask_token, unk_token


def test_the_mask_is_the_tokenizers_mask_token_or_its_unknown_token():
    assert mask_token_of(_Tokenizer("<mask>")) == "<mask>"
    assert mask_token_of(_Tokenizer(None, "<unk>")) == "<unk>"
    with pytest.raises(ValueError):
        mask_token_of(_Tokenizer(None, None))


def test_a_masked_word_reaches_the_model_as_the_mask_token_id(minilm_tokenizer):
    encoded = minilm_tokenizer(["the", mask_token_of(minilm_tokenizer), "failed"], is_split_into_words=True)
    assert minilm_tokenizer.mask_token_id in encoded["input_ids"]


def _windows(m: int = 6, width: int = 32, sensors: int = 3) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, width, dtype=np.float32)
    return np.stack([np.stack([np.sin(t + k) * (s + 1) for s in range(sensors)], axis=1) for k in range(m)])


def test_window_copies_keep_shape_and_labels_and_change_the_readings():
    x, y = _windows(), np.array([0, 1, 0, 1, 0, 0])
    out_x, out_y = window_copies(x, y, AugmentationOptions(copies=2), seed=1)
    assert out_x.shape == (12, 32, 3) and out_x.dtype == x.dtype and np.array_equal(out_y, np.tile(y, 2))
    assert not np.allclose(out_x[:6], x) and not np.allclose(out_x[:6], out_x[6:])


def test_scaling_alone_multiplies_each_sensor_of_a_window_by_one_factor():
    x = _windows() + 5.0  # away from zero, so ratios are defined
    options = AugmentationOptions(jitter=0.0, time_warp=0.0, scaling=0.2)
    out, _ = window_copies(x, np.zeros(len(x)), options, seed=2)
    ratio = out / x
    assert np.allclose(ratio, ratio[:, :1, :], atol=1e-5) and not np.allclose(ratio, 1.0)


def test_time_warp_is_smooth_keeps_both_ends_and_stays_within_the_readings():
    x = _windows()
    warped = time_warp(x, 0.3, np.random.default_rng(0))
    assert np.allclose(warped[:, 0], x[:, 0]) and np.allclose(warped[:, -1], x[:, -1])  # the labeling event stays
    assert not np.allclose(warped, x)
    assert (warped <= x.max(axis=1, keepdims=True) + 1e-6).all() and (warped >= x.min(axis=1, keepdims=True) - 1e-6).all()


def test_only_labeled_training_windows_get_copies():
    x = _windows()
    y = np.array([0, 1, UNLABELED, UNLABELED, 0, 1])
    windows = WindowSet(x, y, np.array([True, True, False, True, True, True]))
    out = augment_window_set(windows, AugmentationOptions(copies=1), seed=0)
    assert len(out.x) == 6 + 4 and np.array_equal(out.y[6:], [0, 1, 0, 1]) and out.scored[6:].all()
    assert np.array_equal(out.x[:6], x)


def test_a_sensor_anomaly_run_fine_tunes_on_the_augmented_labeled_windows(monkeypatch):
    import torch
    from streamtune_trainer import anomaly_pipeline
    from streamtune_trainer.anomaly_data import Recording, RecordingSplits
    from streamtune_trainer.anomaly_training import AnomalyHyperparameters

    def recording(device: int) -> Recording:
        rng = np.random.default_rng(device)
        readings = tuple({"a": float(v), "b": float(-v)} for v in rng.normal(size=60))
        return Recording(f"d{device}", readings, np.array([0] * 40 + [1] * 20))

    seen: list[int] = []

    def finetune(net, train, dev, hp, device, on_epoch, should_stop):
        seen.append(int((train.y != UNLABELED).sum()))
        raise RuntimeError("stop after the data phase")

    monkeypatch.setattr(anomaly_pipeline, "finetune", finetune)
    splits = RecordingSplits(train=(recording(0), recording(1)), dev=(recording(2),), test=(recording(3),))
    hp = AnomalyHyperparameters(window=8, stride=2, calibration_events=10, pretrain_epochs=0)
    ctx = SimpleNamespace(report=lambda **_: None, should_stop=lambda: False)
    for augmentation in (None, AugmentationOptions(copies=2)):
        with pytest.raises(RuntimeError, match="stop after the data phase"):
            anomaly_pipeline.train_network(hp, ("a", "b"), splits, ctx, torch.device("cpu"), augmentation)
    assert seen[1] == 3 * seen[0] > 0
