"""The batched detector: one entity-model call per batch, on normalized texts, spans back in original offsets."""

from __future__ import annotations

from collections.abc import Sequence

from streamtune_anonymizer.detection import PiiDetector, PiiSpan, default_recognizers


class FakeNames:
    """An entity model that tags every occurrence of "Alice" and records how it was called."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def find_batch(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        self.calls.append(list(texts))
        return [[PiiSpan(i, i + 5, "PERSON", source="model", score=0.9)
                 for i in range(len(t)) if t.startswith("Alice", i)] for t in texts]


def test_entity_models_run_once_per_batch_on_normalized_texts():
    model = FakeNames()
    detector = PiiDetector(default_recognizers(), entity_models=[model])
    texts = ["Al\u00adice wrote to a@b.io", "nothing here", "Alice again"]
    spans = detector.detect(texts)
    assert model.calls == [["Alice wrote to a@b.io", "nothing here", "Alice again"]]
    assert [(s.pii_type, texts[0][s.start:s.end]) for s in spans[0]] == [("PERSON", "Al\u00adice"), ("EMAIL", "a@b.io")]
    assert spans[1] == []
    assert spans[2] == [PiiSpan(0, 5, "PERSON", source="model", score=0.9)]


def test_an_empty_batch_calls_no_model():
    model = FakeNames()
    assert PiiDetector([], entity_models=[model]).detect([]) == []
    assert model.calls == []


def test_pattern_and_model_spans_that_overlap_are_merged_without_gaps():
    class WholeText:
        def find_batch(self, texts):
            return [[PiiSpan(0, len(t), "STREET_ADDRESS", source="model")] for t in texts]

    text = "12 Main Street, Springfield, IL 62704"
    spans = PiiDetector(default_recognizers(), [WholeText()]).detect([text])[0]
    covered = {i for s in spans for i in range(s.start, s.end)}
    assert all(i in covered for i, char in enumerate(text) if char.isalnum())
    assert ("ZIP_CODE", "62704") in [(s.pii_type, text[s.start:s.end]) for s in spans]
