"""Dagster asset definitions (thin wiring; the work is done in ops_project/)."""
