"""Custody checkpoints signed with the lab key (issue 21, item 7): a chain rewritten in the database is caught."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from conftest import encode, photo

CASE = "LAB-2026-0077"


@pytest.fixture
def case(vestige, tmp_path):
    assert vestige("init").exit_code == 0
    assert vestige("keys", "init").exit_code == 0
    assert vestige("case", "new", "--ref", CASE, "--title", "Checkpoints").exit_code == 0
    for seed in (1, 2):
        (tmp_path / f"{seed}.jpg").write_bytes(encode(photo(seed, 96)))
        assert vestige("ingest", CASE, tmp_path / f"{seed}.jpg").exit_code == 0
    return CASE


def rehash_whole_chain(config, drop_last: bool = False) -> None:
    """What a forger with database write access does: edit, recompute every hash and the case's head."""
    from vestige.db import Database
    from vestige.db.models import Case, CustodyEvent
    from vestige.evidence.custody import GENESIS, event_hash

    db = Database.from_url(config.database_url)
    with db.session() as session:
        case = session.execute(sa.select(Case).where(Case.reference == CASE)).scalar_one()
        events = session.scalars(sa.select(CustodyEvent).where(CustodyEvent.case_id == case.id)
                                 .order_by(CustodyEvent.seq)).all()
        if drop_last:
            session.delete(events.pop())
        else:
            events[1].actor = "somebody else"
        prev = GENESIS
        for event in events:
            event.prev_hash = prev
            event.hash = event_hash(CASE, event.seq, event.at, event.actor, event.action, event.details, prev)
            prev = event.hash
        case.custody_head, case.custody_count = prev, len(events)
    db.dispose()


@pytest.mark.parametrize("drop_last", [False, True])
def test_a_rewritten_chain_fails_against_the_signed_checkpoint(vestige, case, config, drop_last):
    made = vestige("custody", "checkpoint", CASE)
    assert made.exit_code == 0, made.stderr
    assert made.stdout.startswith(f"checkpoint of {CASE}: event 3,")
    ok = vestige("custody", "verify", CASE)
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.startswith("chain intact: 3 events; matches the signed checkpoint of event 3 made ")
    rehash_whole_chain(config, drop_last=drop_last)
    result = vestige("custody", "verify", CASE)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "signed checkpoint" in lines[0] and lines[0].startswith("chain broken:")


def test_verify_says_when_there_is_no_checkpoint_and_a_forged_line_is_refused(vestige, case, config):
    result = vestige("custody", "verify", CASE)
    assert result.exit_code == 0
    assert "no signed checkpoint" in result.stdout
    assert vestige("custody", "checkpoint").exit_code == 0  # every case
    path = config.data_dir / "custody-checkpoints.jsonl"
    line = json.loads(path.read_text().splitlines()[-1])
    line["count"] = 2  # an older, shorter head: what a forger who removed events would need
    with path.open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    forged = vestige("custody", "verify", CASE)
    assert forged.exit_code == 1 and "not signed by the lab key" in forged.stderr


def test_the_bundle_carries_the_cases_signed_checkpoints(vestige, case, tmp_path):
    import zipfile

    assert vestige("custody", "checkpoint", CASE).exit_code == 0
    bundle = tmp_path / "case.zip"
    assert vestige("report", CASE, "--format", "bundle", "--out", bundle).exit_code == 0
    with zipfile.ZipFile(bundle) as archive:
        lines = archive.read("custody/checkpoints.jsonl").decode().splitlines()
        manifest = json.loads(archive.read("manifest.json"))
    assert [json.loads(line)["case"] for line in lines] == [CASE]
    assert any(f["path"] == "custody/checkpoints.jsonl" for f in manifest["files"])
    assert vestige("verify", bundle).exit_code == 0
