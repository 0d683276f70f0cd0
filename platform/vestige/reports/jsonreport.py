"""The canonical JSON form of a case report and its JSON Schema (``schema/report-v1.json``)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

from vestige.evidence.custody import canonical_json

SCHEMA_PATH = Path(__file__).with_name("schema") / "report-v1.json"


def report_json_bytes(document: dict[str, Any]) -> bytes:
    """Canonical bytes: sorted keys, no whitespace, UTF-8 (floats were rounded when the document was built)."""
    return canonical_json(document).encode("utf-8")


@functools.cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def report_problems(document: Any) -> list[str]:
    """What makes ``document`` not a valid version-1 report, one line each (empty when valid)."""
    validator = jsonschema.Draft202012Validator(load_schema())
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        problems.append(f"{where}: {error.message}")
    return problems
