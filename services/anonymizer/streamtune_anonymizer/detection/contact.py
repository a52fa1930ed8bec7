"""Recognizers of contact details with a syntax of their own: e-mail addresses, URLs and domain names, IP addresses."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from .spans import EMAIL, IP_ADDRESS, URL, PiiSpan

# Each pattern opens with a lookahead on its first character: it lets the regex engine skip ahead fast.
_EMAIL = re.compile(
    r"(?<![\w.%+'-])[\w%+'-]+(?:\.[\w%+'-]+)*@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"
)
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_URL = re.compile(
    rf"(?=[hHwWfF])(?<![\w@.])(?:(?:https?|ftp)://(?:[^\s/@]+@)?|www\.)(?:{_LABEL}\.)*{_LABEL}(?::\d{{1,5}})?"
    r"(?:[/?#][^\s<>\"'()\[\]]*)?"
)
# Bare domains need a well-known top-level domain in lower case, so "e.g.", "p.Arg" or "end.It" stay text.
_TLDS = (
    "com|org|net|edu|gov|mil|int|info|biz|io|ai|app|dev|co|me|tv|uk|us|ca|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|"
    "is|ie|pl|cz|sk|hu|ro|bg|gr|pt|ee|lv|lt|si|hr|rs|ru|ua|tr|il|in|cn|jp|kr|au|nz|br|ar|mx|cl|za|cy|lu|li|mt"
)
_DOMAIN = re.compile(
    rf"(?<![\w@./-])(?:{_LABEL}\.)+(?:{_TLDS})(?:\.(?:{_TLDS}))?(?![\w@-]|\.\w)(?:/[^\s<>\"'()\[\]]*)?"
)
_DOMAIN_LABEL_MIN = 2
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?=\d)(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?=[0-9A-Fa-f:])(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}"
    r"(?:%[0-9A-Za-z_.]+)?(?![\w:])"
)
_URL_TRAILING = ".,;:!?"


class EmailRecognizer:
    """E-mail addresses: local part, @, dotted domain with a letter TLD."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every e-mail address in ``text``."""
        if "@" not in text:
            return
        for match in _EMAIL.finditer(text):
            yield PiiSpan(*match.span(), EMAIL)


class UrlRecognizer:
    """URLs with a scheme or ``www.``, and bare domain names with a well-known top-level domain."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every URL and domain name in ``text``, without trailing sentence punctuation."""
        if "." not in text:
            return
        for match in _URL.finditer(text):
            yield PiiSpan(match.start(), match.start() + len(match.group().rstrip(_URL_TRAILING)), URL)
        for match in _DOMAIN.finditer(text):
            first_label = match.group().split(".", 1)[0]
            if len(first_label) >= _DOMAIN_LABEL_MIN:
                yield PiiSpan(match.start(), match.start() + len(match.group().rstrip(_URL_TRAILING)), URL)


class IpAddressRecognizer:
    """IPv4 (dotted quads of valid octets) and IPv6 addresses (validated by ``ipaddress``)."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """Every IP address in ``text``."""
        if text.count(":") >= 2:
            yield from _ipv6s(text)
        if "." in text:
            for match in _IPV4.finditer(text):
                yield PiiSpan(*match.span(), IP_ADDRESS)


def _ipv6s(text: str) -> Iterator[PiiSpan]:
    for match in _IPV6.finditer(text):
        candidate = match.group()
        if candidate.count(":") < 2 or not any(c not in ":." for c in candidate.split("%")[0]):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield PiiSpan(*match.span(), IP_ADDRESS)
