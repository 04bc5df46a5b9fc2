"""ops_project: the production-operations brain of the booking platform.

Everything in this package but ``definitions.py`` and ``resources.py`` is plain Python with no
Dagster import, so that the CLI (``python -m ops_project``) works when Dagster itself is down.
"""

__version__ = "0.1.0"
