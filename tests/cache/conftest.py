"""The release fixtures (the demo API, a release repository), shared with the cache tests."""

from tests.releases.conftest import api, repo  # noqa: F401 - pytest finds fixtures by name here
