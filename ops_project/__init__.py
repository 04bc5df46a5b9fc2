"""ops_project: the production-operations brain of the booking platform.

Everything in this package but ``definitions.py`` is plain Python with no Dagster import (a lint
rule holds the line), so that the CLI (``python -m ops_project``) works when Dagster itself is down.
"""

__version__ = "0.1.0"
