"""Shared fixtures.

Every test gets its own data directory. The database is SQLite inside it,
unless ``VESTIGE_TEST_DATABASE_URL`` names a PostgreSQL server: then each test
gets its own schema there (created and dropped around it), so the same suite
runs on both backends. ``.ci/run`` runs it both ways.
"""

from __future__ import annotations

import io
import os
import shlex
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from PIL import Image

from vestige.core.config import Config, load_config
from vestige.core.workspace import Workspace, init_workspace

TEST_DATABASE_URL = os.environ.get("VESTIGE_TEST_DATABASE_URL", "")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own for this test: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / 'data' / 'vestige.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(TEST_DATABASE_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.engine.make_url(TEST_DATABASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """Environment variables that point Vestige at this test's data directory and database."""
    return {
        "VESTIGE_DATA_DIR": str(tmp_path / "data"),
        "VESTIGE_DATABASE__URL": database_url,
        "VESTIGE_ACTOR": "tester",
    }


@pytest.fixture
def config(env: dict[str, str]) -> Config:
    return load_config(path=Path(__file__).resolve().parents[1] / "config.toml", environ=env)


@pytest.fixture
def workspace(config: Config) -> Iterator[Workspace]:
    """An initialised workspace (data directory created, database migrated)."""
    ws, _, _ = init_workspace(config)
    yield ws
    ws.close()


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def vestige(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the ``vestige`` command line in this process, as a user would, and capture its output."""
    from vestige.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VESTIGE_CONFIG", str(Path(__file__).resolve().parents[1] / "config.toml"))
    runner = CliRunner()

    def run(*args: str | Path, input: str | None = None) -> Result:
        argv = [str(a) for a in args]
        if len(argv) == 1 and " " in argv[0]:
            argv = shlex.split(argv[0])
        with runner.isolation(input=input, env=env) as streams:
            code = 0
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            stdout, stderr = streams[0].getvalue().decode(), streams[1].getvalue().decode()
        return Result(code, stdout, stderr)

    return run


def photo(seed: int = 0, size: int = 64) -> Image.Image:
    """A small photo-like picture, different for each seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    f = rng.uniform(1, 5, size=(3, 2))
    chans = [128 + 80 * np.sin(2 * np.pi * f[c, 0] * xx + seed) * np.cos(2 * np.pi * f[c, 1] * yy) for c in range(3)]
    pixels = np.stack(chans, -1) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def make_photo(tmp_path: Path):
    """Write a photo-like image file and return its path."""
    folder = tmp_path / "incoming"
    folder.mkdir(exist_ok=True)

    def make(name: str = "a.jpg", seed: int = 0, fmt: str = "JPEG", size: int = 64, **kwargs: object) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(photo(seed, size), fmt, **kwargs))
        return path

    return make


TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"


def pip_install_plugin(name: str, target: Path) -> Path:
    """Install the test plugin ``tests/plugins/<name>`` into ``target``, as a lab installs a plugin."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(TEST_PLUGINS / name)],
        check=True, capture_output=True, text=True,
    )
    return target


def put_on_path(site: Path, module: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make an installed plugin importable here and, through PYTHONPATH, in subprocesses."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    importlib.invalidate_caches()
    yield site
    sys.modules.pop(module, None)
