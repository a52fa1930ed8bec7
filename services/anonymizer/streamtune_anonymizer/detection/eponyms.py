"""Disease eponyms are not personal data: "Huntington disease", "Crohn's", "Down syndrome" must survive redaction.

NER models read "Wilson" in "Wilson disease" as a person (spaCy even calls "Huntington" and "Crohn"
organisations), and redacting it destroys the clinical text a model trains on. A post-filter drops an
entity model's span when it names a disease: a name followed by a disease word ("Wilson disease",
"Graves' disease", "Duchenne muscular dystrophy"), or a well-known eponym used alone ("Crohn's",
"Alzheimer"). A name with a first name or an honorific ("Mr. Wilson", "John Smith's disease") stays a person.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .spans import LOCATION, NRP, ORGANIZATION, PERSON, PiiSpan

# The types an entity model may hang on an eponym ("Huntington" is a town too, "Crohn" spaCy's ORG).
FILTERED_TYPES = frozenset({PERSON, ORGANIZATION, LOCATION, NRP})
DISEASE_WORDS = (
    "disease", "diseases", "syndrome", "syndromes", "chorea", "lymphoma", "lymphomas", "palsy", "sign", "signs",
    "sarcoma", "tumor", "tumors", "tumour", "tumours", "anemia", "anaemia", "dystrophy", "ataxia", "disorder",
    "deficiency", "phenomenon", "reflex", "triad", "ulcer", "cyst", "carcinoma", "leukemia", "leukaemia",
    "dementia", "encephalopathy", "encephalitis", "atrophy", "myopathy", "neuropathy", "histiocytosis",
    "thyroiditis", "fever", "virus", "cell", "cells", "bodies", "anomaly", "malformation", "aneurysm",
)
# Words that may stand between the name and the disease word ("Duchenne muscular dystrophy").
_QUALIFIERS = r"muscular|spinal|cerebellar|h(?:a)?emolytic|cell|like|type\s+\w+"
# Eponyms used alone or with a possessive ("Parkinson's", "Graves'"); common surnames are left out.
POSSESSIVE_EPONYMS = frozenset({
    "addison", "alzheimer", "asperger", "crohn", "cushing", "ewing", "fabry", "gaucher", "graves", "hashimoto",
    "hirschsprung", "hodgkin", "huntington", "kaposi", "marfan", "paget", "parkinson", "raynaud", "sjogren",
    "sjögren", "tourette", "wilms", "duchenne", "creutzfeldt-jakob", "tay-sachs", "niemann-pick",
})
# Eponyms that name nobody in practice, so they are diseases even without a suffix ("Alzheimer patients").
BARE_EPONYMS = frozenset({
    "alzheimer", "asperger", "crohn", "hirschsprung", "hodgkin", "tourette", "creutzfeldt-jakob", "tay-sachs",
    "niemann-pick", "guillain-barré", "guillain-barre", "ehlers-danlos", "wiskott-aldrich", "charcot-marie-tooth",
})
# Particles and the second words of multi-word eponyms ("von Willebrand", "Lou Gehrig").
_NAME_PARTICLES = frozenset({"von", "van", "der", "den", "de", "la", "lou", "gehrig", "willebrand", "hippel-lindau"})
_HONORIFIC_BEFORE = re.compile(r"(?:\b(?:mr|mrs|ms|miss|dr|prof|sir|madam|patient)\.?\s*)$", re.IGNORECASE)
_POSSESSIVE = r"\s?['’]\s?s?"
_DISEASE_AFTER = re.compile(
    rf"^(?:\s?-\s?[A-Z][\w]*)*(?:{_POSSESSIVE})?(?:[\s-]+(?:{_QUALIFIERS}))*\s+(?:{'|'.join(DISEASE_WORDS)})\b",
    re.IGNORECASE,
)
_POSSESSIVE_AFTER = re.compile(rf"^{_POSSESSIVE}(?!\w)")
_TRAILING_POSSESSIVE = re.compile(rf"(?:{_POSSESSIVE})$")
_SPACED_HYPHEN = re.compile(r"\s+-\s+")  # tokenized text writes "Pelizaeus - Merzbacher"


class WithoutEponyms:
    """An entity model whose spans pass through ``drop_eponyms`` (same ``find_batch`` protocol)."""

    def __init__(self, model: object) -> None:
        self.model = model

    def find_batch(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        """The wrapped model's spans for each text, less the disease eponyms."""
        found = self.model.find_batch(texts)  # type: ignore[attr-defined]
        return [drop_eponyms(text, spans) for text, spans in zip(texts, found, strict=True)]


def drop_eponyms(text: str, spans: Sequence[PiiSpan]) -> list[PiiSpan]:
    """``spans`` without the entity-model spans that are part of a disease eponym in ``text``."""
    return [span for span in spans if span.pii_type not in FILTERED_TYPES or not is_eponym(text, span)]


def is_eponym(text: str, span: PiiSpan) -> bool:
    """Whether ``text[span.start:span.end]`` names a disease rather than a person, place or organisation."""
    if _HONORIFIC_BEFORE.search(text[max(0, span.start - 12):span.start]):
        return False
    value = text[span.start:span.end]
    possessive = bool(_TRAILING_POSSESSIVE.search(value))
    words = _SPACED_HYPHEN.sub("-", _TRAILING_POSSESSIVE.sub("", value)).lower().split()
    if not words or not _may_be_eponym(words):
        return False
    after = text[span.end:span.end + 80]
    if _DISEASE_AFTER.match(after):
        return True
    name = " ".join(words)
    if name in BARE_EPONYMS:
        return True
    return name in POSSESSIVE_EPONYMS and (possessive or bool(_POSSESSIVE_AFTER.match(after)))


def _may_be_eponym(words: list[str]) -> bool:
    """One name ("Wilson", "Creutzfeldt-Jakob"), or several that are all eponym words ("von Willebrand")."""
    if len(words) == 1:
        return True
    known = POSSESSIVE_EPONYMS | BARE_EPONYMS | _NAME_PARTICLES
    return all(word in known for word in words)
