"""Synthetic PII training data: a Faker-and-templates generator and the presidio-research conversion.

Trusted, generated text: it is imported into the object store as a dataset directly (see
``streamtune_shared.datasets.import_rows``), never through the anonymizer.
"""

from .bio import Span, spans_to_bio
from .generator import DEFAULT_LOCALES, generate
from .presidio import from_presidio, is_validation_template

__all__ = ["DEFAULT_LOCALES", "Span", "from_presidio", "generate", "is_validation_template", "spans_to_bio"]
