"""Dagster schedule definitions."""
