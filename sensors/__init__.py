"""Dagster sensor definitions (the release-tag sensor arrives with deploy validation)."""
