"""Names as they appear in identifiers: ``eu-west-1`` becomes ``eu_west_1``.

Dagster resource keys, asset-key parts and check names allow only letters, digits and ``_``;
configured names may hold ``-``. One function does the translation everywhere.
"""

from __future__ import annotations


def identifier(name: str) -> str:
    """``name`` with every ``-`` replaced by ``_`` (configured names are ``[a-z0-9][a-z0-9_-]*``)."""
    return name.replace("-", "_")
