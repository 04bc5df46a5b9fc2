"""Dagster job definitions."""
