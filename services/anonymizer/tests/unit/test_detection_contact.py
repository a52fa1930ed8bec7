"""E-mail, URL / domain and IP recognizers, each on its own."""

from __future__ import annotations

import pytest
from streamtune_anonymizer.detection.contact import EmailRecognizer, IpAddressRecognizer, UrlRecognizer


def _values(recognizer, text: str) -> list[str]:
    return [text[s.start:s.end] for s in recognizer.find(text)]


@pytest.mark.parametrize("email", ["jane.doe@example.com", "a+tag@sub.example.co.uk", "o'brien@mail.ie"])
def test_email_addresses(email):
    assert _values(EmailRecognizer(), f"write to {email}, thanks") == [email]


@pytest.mark.parametrize("text", ["user@localhost", "@handle", "a@b", "price 5@10"])
def test_not_email_addresses(text):
    assert _values(EmailRecognizer(), text) == []


@pytest.mark.parametrize("url", ["http://www.ScrapbookInsider.com.pt/", "https://InstantResales.com.cy/",
                                 "www.example.org/path?q=1", "https://x.io:8080/a#b", "example.com", "shop.co.uk"])
def test_urls_and_domains(url):
    assert url in _values(UrlRecognizer(), f"My website is {url}.")


@pytest.mark.parametrize("text", ["e.g. this", "i.e. that", "p.Arg295Ser", "the end.It went", "file.txt",
                                  "version 3.11.4", "Fig.2 shows"])
def test_abbreviations_versions_and_file_names_are_not_domains(text):
    assert _values(UrlRecognizer(), text) == []


@pytest.mark.parametrize("ip", ["192.168.0.1", "8.8.8.8", "2001:db8::8a2e:370:7334", "::1", "fe80::1%eth0"])
def test_ip_addresses(ip):
    assert _values(IpAddressRecognizer(), f"host {ip} replied") == [ip]


@pytest.mark.parametrize("text", ["version 256.1.1.1", "1.2.3", "10.0.0.1.5", "at 10:14:33", "std::vector"])
def test_not_ip_addresses(text):
    assert _values(IpAddressRecognizer(), text) == []
