"""The architecture's rules, enforced: import-linter contracts (.importlinter) over the core, the web app and the
built-in plugins. The suite fails on an import that breaks them; the second test proves it would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("platform", "plugins", "web")


def _lint(cwd: Path, pythonpath: list[Path] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("lint-imports")), "--config", str(ROOT / ".importlinter"),
               "--no-cache"]
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" KEPT") == 5


def test_a_forbidden_import_breaks_the_contracts(tmp_path):
    """A copy of the sources with a plugin importing another plugin and a core internal, and the core importing
    the web app."""
    for folder in SOURCES:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    repmix = tmp_path / "plugins" / "vestige_repmix" / "__init__.py"
    repmix.write_text(repmix.read_text() + "\nimport vestige_zoo  # forbidden: plugins do not import each other\n"
                      "import vestige.evidence.custody  # forbidden: plugins go through vestige.plugin\n")
    cases = tmp_path / "platform" / "vestige" / "evidence" / "cases.py"
    cases.write_text(cases.read_text() + "\nimport vestige_web  # forbidden: the core does not import the web app\n")
    result = _lint(tmp_path, [tmp_path / folder for folder in SOURCES])
    assert result.returncode == 1, result.stdout + result.stderr
    out = " ".join(result.stdout.split())  # lint-imports wraps long contract names
    assert "The built-in detector, generator and perturbation plugins do not import each other BROKEN" in out
    assert "vestige_repmix -> vestige_zoo" in result.stdout
    assert "Plugins import Vestige only through the public plugin API (vestige.plugin and its submodules) BROKEN" in out
    assert "vestige_repmix -> vestige.evidence.custody" in result.stdout
    assert "The core does not import the web app (only the command that starts it does) BROKEN" in out
    assert "vestige.evidence.cases -> vestige_web" in result.stdout
