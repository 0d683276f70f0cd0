"""Custody checkpoints: each case's chain head, signed with the lab key, appended to a file outside the database.

The hash chain catches any edit that does not recompute it; a forger with
write access to the database can recompute it (and the case's head). A
checkpoint anchors the chain outside the database: one JSON line per case
and moment, ``{"case", "count", "head", "at", "key", "signature"}``, where the
signature is the lab's Ed25519 signature of the canonical JSON of the other
fields. Lines are only ever appended to ``<data_dir>/custody-checkpoints.jsonl``
(open with ``O_APPEND``, fsync); make the file append-only at the file system
(``chattr +a``) and back it up apart from the database.

``custody verify`` then checks the chain against the case's latest
checkpoint: the event the checkpoint names must still be there with the same
hash, so a rewritten or shortened chain fails even though it links.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vestige.core.config import Config
from vestige.core.errors import ConfigError
from vestige.evidence.custody import canonical_json
from vestige.evidence.keys import fingerprint, load_lab_public_key, load_signing_key, signature_is_valid

CHECKPOINT_FILE = "custody-checkpoints.jsonl"
_FIELDS = ("case", "count", "head", "at", "key")


def checkpoint_path(config: Config) -> Path:
    return config.data_dir / CHECKPOINT_FILE


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def append_checkpoints(config: Config, heads: Sequence[tuple[str, int, str | None]]) -> list[dict[str, Any]]:
    """Sign and append a checkpoint for each (case reference, event count, head hash); returns the lines."""
    key = load_signing_key(config)
    key_id = fingerprint(key.public_key())
    at = _now()
    lines = []
    for reference, count, head in heads:
        body = {"case": reference, "count": count, "head": head or "", "at": at, "key": key_id}
        body["signature"] = base64.b64encode(key.sign(canonical_json(body).encode("utf-8"))).decode("ascii")
        lines.append(body)
    path = checkpoint_path(config)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write("".join(canonical_json(line) + "\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise ConfigError(f"cannot append to the checkpoint file {path}: {exc.strerror}") from None
    return lines


def case_checkpoint_lines(config: Config, reference: str) -> bytes:
    """The checkpoint file's lines of one case, as stored (for the evidence bundle); empty when there are none."""
    path = checkpoint_path(config)
    if not path.is_file():
        return b""
    kept = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(text).get("case") == reference:
                kept.append(text + "\n")
        except (ValueError, AttributeError):
            continue
    return "".join(kept).encode("utf-8")


@dataclass(frozen=True)
class CheckpointCheck:
    ok: bool
    sentence: str


def _age(at: str) -> str:
    made = dt.datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    seconds = max(0, int((dt.datetime.now(dt.timezone.utc) - made).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} old"
    return f"{seconds} s old"


def check_against_checkpoint(config: Config, reference: str, events: Sequence[Any]) -> CheckpointCheck:
    """Compare a (linked, intact) chain with the case's latest checkpoint that the lab key signed."""
    path = checkpoint_path(config)
    if not path.is_file():
        return CheckpointCheck(True, "no signed checkpoint yet (`vestige custody checkpoint`)")
    public = load_lab_public_key(config)
    latest = None
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            line = json.loads(text)
            if line.get("case") != reference:
                continue
            body = {k: line[k] for k in _FIELDS}
            signed = signature_is_valid(public, base64.b64decode(line["signature"]), canonical_json(body).encode("utf-8"))
        except (ValueError, KeyError, TypeError, AttributeError):
            signed = False
            if reference not in text:
                continue
        if not signed:
            return CheckpointCheck(False, f"line {number} of {path} is a checkpoint of {reference} not signed by the lab key")
        latest = line
    if latest is None:
        return CheckpointCheck(True, "no signed checkpoint yet (`vestige custody checkpoint`)")
    count, age = int(latest["count"]), _age(latest["at"])
    if count == 0:
        return CheckpointCheck(True, f"matches the signed checkpoint of an empty chain made {latest['at']} ({age})")
    if len(events) < count:
        return CheckpointCheck(False, f"the signed checkpoint made {latest['at']} ({age}) records {count} events, "
                                      f"but the chain holds {len(events)}: events were removed and the chain rewritten")
    if events[count - 1].hash != latest["head"]:
        return CheckpointCheck(False, f"event {count} no longer has the hash of the signed checkpoint made "
                                      f"{latest['at']} ({age}): the chain was rewritten")
    return CheckpointCheck(True, f"matches the signed checkpoint of event {count} made {latest['at']} ({age})")
