"""The slow test plugin (tests/plugins/vestige_slowtest), pip-installed into a folder of its own.

Import the fixtures into a test module: ``from slowplugin import slow_site, with_slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import pip_install_plugin, put_on_path


@pytest.fixture(scope="session")
def slow_site(tmp_path_factory) -> Path:
    return pip_install_plugin("vestige_slowtest", tmp_path_factory.mktemp("slowtest-site"))


@pytest.fixture
def with_slow(slow_site, monkeypatch):
    """The plugin importable in this process (and in subprocesses through PYTHONPATH)."""
    yield from put_on_path(slow_site, "vestige_slowtest", monkeypatch)
