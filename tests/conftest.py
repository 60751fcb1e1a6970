"""Shared fixtures: the shipped configuration, loaded once."""

import pytest

from flows.config import REPO_CONFIG, load_settings


@pytest.fixture(scope="session")
def settings():
    return load_settings(REPO_CONFIG)
