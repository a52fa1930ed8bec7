"""A reproducible mix of valid, duplicate and malformed raw entries, with the PII they carry."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def luhn_card(rng: random.Random) -> str:
    """A 16-digit card number that passes the Luhn check, grouped by four."""
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
    number = "".join(map(str, digits)) + str((10 - total % 10) % 10)
    return " ".join(number[i:i + 4] for i in range(0, 16, 4))


# Values the detector is known to find in these sentences: this test is about the pipeline never letting a
# found value through (events.clean, shards, after a kill -9), not about recall, which bench_pii measures.
FIRST_NAMES = ("Maria", "James", "Anna", "Robert", "Linda", "Michael", "David", "Emma", "Thomas")
LAST_NAMES = ("Garcia", "Wilson", "Kowalski", "Johnson", "Martin", "Brown", "Rossi", "Miller", "Schmidt")
CITIES = ("Boston", "Chicago", "Denver", "Seattle", "Houston", "Atlanta", "Phoenix", "Portland")
STREETS = ("Maple", "Oak", "Cedar", "Pine", "Elm", "Birch")
MONTHS = ("March", "June", "October", "January")


def ssn(rng: random.Random) -> str:
    """A US SSN with a valid area (not 000, 666 or 9xx), group and serial."""
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"


def german_iban(rng: random.Random) -> str:
    """A German IBAN whose mod-97 check digits are right."""
    bban = "".join(str(rng.randrange(10)) for _ in range(18))
    return f"DE{98 - int(bban + '131400') % 97:02d}{bban}"


def pii_sentence(i: int, rng: random.Random) -> tuple[str, list[str]]:
    """One of three operator notes, with every PII value it holds."""
    first, last, city = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), rng.choice(CITIES)
    if i % 3 == 0:
        email, phone = f"user{i}@example.com", f"+1-415-555-{1000 + i % 9000:04d}"
        card, ip = luhn_card(rng), f"192.168.{i % 250}.{1 + i % 200}"
        return f"operator note: call {phone} or mail {email}, card {card}, from {ip}", [email, phone, card, ip]
    if i % 3 == 1:
        number, street, social = rng.randrange(10, 9999), rng.choice(STREETS), ssn(rng)
        date = f"{rng.randrange(1, 13):02d}/{rng.randrange(1, 29):02d}/{rng.randrange(1950, 2005)}"
        return (f"Technician {first} {last} (SSN {social}) visited {number} {street} Street in {city} on {date}.",
                [first, last, social, f"{number} {street} Street", city, date])
    iban, born = german_iban(rng), f"{rng.choice(MONTHS)} {rng.randrange(1, 29)}, {rng.randrange(1950, 2005)}"
    zip_code, order = f"{rng.randrange(10000, 99999)}", rng.randrange(1000, 9999)  # order numbers are no ZIPs
    url = f"https://billing.example.org/orders/{order}"
    return (f"Refund of order {order} to IBAN {iban} for {first} {last}, born {born}, ZIP {zip_code}; see {url}",
            [iban, first, last, born, zip_code, url])


@dataclass
class RawMix:
    """Entries to XADD (field -> bytes), and what each should become."""

    entries: list[dict[str, bytes]] = field(default_factory=list)
    valid_ids: list[str] = field(default_factory=list)
    labeled_ids: set[str] = field(default_factory=set)
    malformed: list[bytes] = field(default_factory=list)
    duplicates: int = 0
    pii_values: list[str] = field(default_factory=list)


def _malformed(i: int, now: datetime) -> dict[str, bytes]:
    shapes = [
        {"payload": b"not json at all"},
        {"payload": b"\xff\xfe\x00 binary"},
        {"other_field": b"{}"},
        {"payload": json.dumps({"schema_version": 9, "event_id": f"bad-{i}"}).encode()},
        {"payload": json.dumps({"schema_version": 1, "event_id": f"bad-{i}", "device_id": "d",
                                "dataset": "pump-sensors", "ts": "yesterday"}).encode()},
        {"payload": json.dumps({"schema_version": 1, "event_id": f"bad-{i}", "device_id": "d",
                                "dataset": "pump-sensors", "ts": (now + timedelta(days=3)).isoformat(),
                                "readings": {"p": 1.0}}).encode()},
        {"payload": json.dumps([1, 2, 3]).encode()},
        {"payload": b'{"schema_version": 1, "event_id": "x' + b"A" * 200_000 + b'"}'},
        {"payload": json.dumps({"schema_version": 1, "event_id": f"bad-{i}", "device_id": "d",
                                "dataset": "Bad Name!", "ts": now.isoformat()}).encode()},
    ]
    return shapes[i % len(shapes)]


def build_mix(n_total: int = 1000, seed: int = 11) -> RawMix:
    """About 80% valid (pump readings and PII-bearing texts), 10% duplicates, 10% malformed, shuffled."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    pumps = [json.loads(line) for line in (FIXTURES / "pump_events.jsonl").read_text().splitlines()]
    mix = RawMix()
    n_malformed, n_dup = n_total // 10, n_total // 10
    valid_events = []
    for i in range(n_total - n_malformed - n_dup):
        event = dict(pumps[i % len(pumps)])
        event["event_id"] = f"e2e-{i:05d}"
        event["ts"] = (now - timedelta(seconds=n_total - i)).isoformat()
        if i % 2 == 0:
            event["text"], values = pii_sentence(i // 2, rng)
            mix.pii_values += values
        valid_events.append(event)
        mix.valid_ids.append(event["event_id"])
        if event.get("label") is not None:
            mix.labeled_ids.add(event["event_id"])
    entries = [{"payload": json.dumps(e).encode()} for e in valid_events]
    entries += [{"payload": json.dumps(rng.choice(valid_events)).encode()} for _ in range(n_dup)]
    mix.duplicates = n_dup
    for i in range(n_malformed):
        bad = _malformed(i, now)
        entries.append(bad)
        # Without a payload field the dead letter carries the entry's fields as "name=value" lines.
        mix.malformed.append(bad.get("payload") or b"".join(k.encode() + b"=" + v + b"\n" for k, v in bad.items()))
    # A duplicate carries the same bytes as its original, so whichever comes first wins.
    rng.shuffle(entries)
    mix.entries = entries
    return mix
