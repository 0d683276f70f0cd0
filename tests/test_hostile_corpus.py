"""The standing fault-and-hostile-input suite (issue 21): every file of a hostile corpus, made at test time,
through ``vestige ingest`` and the upload API: a one-line refusal or a correct ingest, never a traceback,
nothing written on refusal, the custody chain intact, and the ingesting process within 512 MB."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostilecorpus import make_corpus
from test_ingest import snapshot

CASE = "LAB-2026-0099"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile") / "corpus"
    return folder, make_corpus(folder)


@pytest.fixture
def case(vestige):
    assert vestige("init").exit_code == 0
    assert vestige("case", "new", "--ref", CASE, "--title", "Hostile corpus").exit_code == 0
    return CASE


def test_the_corpus_has_at_least_25_hostile_files(corpus):
    _, expected = corpus
    assert len(expected) >= 25
    assert sum(1 for outcome, _ in expected.values() if outcome == "refused") >= 20


def test_each_file_through_vestige_ingest(vestige, case, config, corpus):
    folder, expected = corpus
    taken = 0
    for name, (outcome, what) in expected.items():
        before = snapshot(config)
        result = vestige("ingest", CASE, folder / name)
        assert "Traceback" not in result.stderr, name
        if outcome == "refused":
            lines = result.stderr.strip().splitlines()
            assert result.exit_code == 1 and len(lines) == 1, (name, lines)
            assert what in lines[0], (name, lines[0])
            assert snapshot(config) == before, f"{name}: something was written on refusal"
        else:
            assert result.exit_code == 0, (name, result.stderr)
            assert result.stdout.startswith(f"ingested {what},"), (name, result.stdout)
            taken += what
    assert len(json.loads(vestige("images", CASE, "--json").stdout)) == taken
    assert vestige("custody", "verify", CASE).exit_code == 0


def test_the_whole_corpus_in_one_process_stays_within_512_mb(vestige, case, env, corpus, tmp_path):
    folder, expected = corpus
    # VmHWM, the peak of this process's own memory: ru_maxrss would also count the parent (pytest) it was
    # forked from, since Linux carries the high-water mark across exec.
    probe = (
        "import re, sys\n"
        "from vestige.cli import main\n"
        "try:\n    main(sys.argv[2:])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
        "open(sys.argv[1], 'w').write(hwm)\n"
    )
    peak_file = tmp_path / "peak-kib"
    result = subprocess.run([sys.executable, "-c", probe, str(peak_file), "ingest", CASE, str(folder)],
                            env={**os.environ, **env, "VESTIGE_CONFIG": str(ROOT / "config.toml")},
                            capture_output=True, text=True, timeout=600)
    assert "Traceback" not in result.stderr
    refused = [line for line in result.stderr.splitlines() if line.startswith("rejected: ")]
    assert len(refused) == sum(1 for outcome, _ in expected.values() if outcome == "refused"), result.stderr
    peak_mb = int(peak_file.read_text()) / 1024
    print(f"peak resident memory of `vestige ingest` over the corpus: {peak_mb:.0f} MB")
    assert peak_mb <= 512, f"peak resident memory {peak_mb:.0f} MB"
    assert vestige("custody", "verify", CASE).exit_code == 0


def test_the_corpus_through_the_upload_api(workspace, corpus):
    from vestige.access.accounts import add_member, add_user, create_token
    from vestige.evidence.cases import create_case
    from vestige_web import create_app

    folder, expected = corpus
    with workspace.db.session() as session:
        user = add_user(session, username="uploader", role="examiner", password=None)
        case = create_case(session, reference=CASE, title="Hostile corpus", actor="tester")
        add_member(session, case, user, role="lead", actor="tester")
        token = create_token(session, user)
    client = create_app({"TESTING": True, "VESTIGE": workspace.config}).test_client()
    names = [n for n in expected if not n.startswith("link-")]  # a browser uploads bytes, never a link
    files = [(io.BytesIO((folder / n).read_bytes()), n) for n in names]
    response = client.post(f"/api/v1/cases/{CASE}/images", data={"files": files}, content_type="multipart/form-data",
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 201), response.get_data(as_text=True)[:500]
    body = response.get_json()
    refused = [n for n in names if expected[n][0] == "refused"]
    assert len(body["rejected"]) == len(refused)
    assert all("\n" not in r["reason"] for r in body["rejected"])
    assert len(body["ingested"]) + len(body["duplicates"]) == sum(expected[n][1] for n in names
                                                                    if expected[n][0] == "ingested")
    from vestige.evidence.cases import get_case
    from vestige.evidence.custody import verify_chain

    with workspace.db.session() as session:
        assert verify_chain(session, get_case(session, CASE)).intact
