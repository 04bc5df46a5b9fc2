"""Slow-query analysis: PostgreSQL logs and SQLite (D1) query logs, one fingerprint space, ranked reports."""
