"""PII detection in free text: pattern recognizers and pluggable entity models behind one batched detector.

``PiiDetector(default_recognizers()).detect(texts)`` gives, per text, merged spans in original offsets.
"""

from .detector import EntityModel, PiiDetector, Recognizer, default_recognizers
from .normalize import NormalizedText, normalize
from .spans import ALL_TYPES, MODEL_TYPES, PATTERN_TYPES, PiiSpan, merge_spans

__all__ = [
    "ALL_TYPES", "MODEL_TYPES", "PATTERN_TYPES", "EntityModel", "NormalizedText", "PiiDetector", "PiiSpan",
    "Recognizer", "default_recognizers", "merge_spans", "normalize",
]
