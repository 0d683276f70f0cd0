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


def test_the_wheel_ships_the_three_roots_and_the_migrations(tmp_path):
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = tmp_path.glob("vestige-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "vestige/migrations/env.py" in names
    assert any(n.startswith("vestige/migrations/versions/0001_") for n in names)
    assert "vestige_metadata/__init__.py" in names and "vestige_web/__init__.py" in names
    # Data files the reports need at run time: the JSON Schema and the HTML template.
    assert {"vestige/reports/schema/report-v1.json", "vestige/reports/templates/report.html.j2"} <= set(names)
    assert not any(n.startswith(("platform/", "plugins/", "web/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "metadata = vestige_metadata" in zipfile.ZipFile(wheel).read(entry_points).decode()
