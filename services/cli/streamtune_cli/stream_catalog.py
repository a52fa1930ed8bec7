"""The streams the CLI knows: every stream name in ``streamtune_shared.streams``, read from the module."""

from __future__ import annotations

from streamtune_shared import streams

# Constants of the streams module that are not stream names.
_NOT_STREAMS = {"PAYLOAD_FIELD"}


def known_streams() -> list[str]:
    """Every stream the shared contract names, in the module's order (new ones appear without a CLI change)."""
    return [value for name, value in vars(streams).items()
            if name.isupper() and name not in _NOT_STREAMS and isinstance(value, str)]
