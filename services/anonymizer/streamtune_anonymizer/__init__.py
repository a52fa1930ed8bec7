"""streamtune anonymizer: keyed pseudonyms and PII redaction (events.valid -> events.clean), dataset shards."""
