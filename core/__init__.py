"""Settings, database, errors (RFC 9457), audit log, clock, PII vault, access-token principals."""
