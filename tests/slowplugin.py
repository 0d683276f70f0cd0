"""The slow test plugin (tests/plugins/vestige_slowtest), pip-installed into a folder of its own.

Import the fixtures into a test module: ``from slowplugin import slow_site, with_slow``.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parent / "plugins" / "vestige_slowtest"


@pytest.fixture(scope="session")
def slow_site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("slowtest-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(PLUGIN)],
        check=True, capture_output=True, text=True,
    )
    return target


@pytest.fixture
def with_slow(slow_site, monkeypatch):
    """The plugin importable in this process (and in subprocesses through PYTHONPATH)."""
    monkeypatch.syspath_prepend(str(slow_site))
    monkeypatch.setenv("PYTHONPATH", str(slow_site))
    importlib.invalidate_caches()
    yield slow_site
    sys.modules.pop("vestige_slowtest", None)
