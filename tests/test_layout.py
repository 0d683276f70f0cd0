"""The repository's layout is part of its architecture (docs/design.md)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_platform_is_the_standard_library():
    # platform/ is a source root; a package there would shadow this module for torch, SQLAlchemy and Celery.
    out = subprocess.run(
        [sys.executable, "-c", "import platform, vestige; print(platform.__file__); print(platform.python_version())"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert "site-packages" not in out[0] and not out[0].startswith(str(ROOT))
    assert out[1].count(".") == 2


def test_source_roots_are_not_packages():
    for root in ("platform", "plugins", "web"):
        assert not (ROOT / root / "__init__.py").exists()


def test_migrations_are_found_by_the_installed_package():
    from vestige.db.migrate import migrations_dir

    assert (migrations_dir() / "env.py").is_file()
    assert list((migrations_dir() / "versions").glob("*.py"))


def test_no_module_is_a_grab_bag():
    names = {p.name for root in ("platform", "plugins", "web", "migrations") for p in (ROOT / root).rglob("*.py")}
    assert not names & {"utils.py", "helpers.py", "misc.py", "common.py"}
