"""Loads the conformance plugin for ``pytest conformance`` (see ``conformance/plugin.py``)."""

from conformance.plugin import pytest_addoption, pytest_sessionfinish, pytest_testnodedown  # noqa: F401
