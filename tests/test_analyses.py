"""Analyses run in this process (the embedded default with no worker): verdicts, merging, robustness, custody."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from slowplugin import slow_site, with_slow  # noqa: F401  (fixtures)

from vestige.analysis.analyses import latest_analysis, tasks_of
from vestige.analysis.robustness import PROBES
from vestige.analysis.verdicts import decode_embedding
from vestige.core.config import load_config
from vestige.core.workspace import Workspace
from vestige.db.models import Analysis, AnalysisTask, CustodyEvent, Image, Perturbation, Verdict
from vestige.evidence.cases import get_case
from vestige.jobs.embedded_broker import pending_message_ids
from vestige.jobs.execution import run_analysis_task
from vestige.jobs.heartbeat import Heartbeat
from vestige.jobs.worker_process import ProcessState

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def case_with_images(vestige, make_photo, env):
    def make(count: int = 3) -> list:
        assert vestige("init").exit_code == 0
        assert vestige("case new --ref LAB-1 --title t").exit_code == 0
        files = [make_photo(f"p{i}.jpg", seed=i, size=48) for i in range(count)]
        result = vestige("ingest", "LAB-1", *files, "--by", "A. Examiner")
        assert result.exit_code == 0, result.stderr
        return files

    return make


@pytest.fixture
def open_workspace(config):
    workspaces = []

    def opened() -> Workspace:
        workspaces.append(Workspace.open(config))
        return workspaces[-1]

    yield opened
    for ws in workspaces:
        ws.close()


def test_analyze_wait_without_a_worker_runs_in_process_and_stores_each_verdict_once(
        vestige, case_with_images, with_slow, env, open_workspace):
    case_with_images(3)
    env["VESTIGE_JOBS__IMAGES_PER_TASK"] = "2"
    result = vestige("analyze LAB-1 --detectors slow-test,raising-test,metadata --wait")
    assert result.exit_code == 0, result.stderr
    assert "running the analysis in this process" in result.stdout
    assert "analysing: 9/9 verdicts" in result.stderr  # not a terminal: lines, not a bar

    ws = open_workspace()
    with ws.db.session() as session:
        analysis = latest_analysis(session, get_case(session, "LAB-1"))
        assert (analysis.status, analysis.progress_done, analysis.progress_total) == ("done", 9, 9)
        assert len(tasks_of(session, analysis)) == 3 * 2  # three detectors, chunks of two images
        verdicts = session.execute(sa.select(Verdict).where(Verdict.analysis_id == analysis.id)).scalars().all()
        assert len(verdicts) == 9 and len({(v.image_id, v.detector) for v in verdicts}) == 9
        slow = [v for v in verdicts if v.detector == "slow-test"]
        for v in slow:  # pictures are blobs in the evidence store; embeddings float32 bytes
            (picture,) = v.pictures
            assert ws.store.get(picture["sha256"]) == bytes([int(v.scores["mean"])])
            assert picture["media_type"] == "application/octet-stream" and "data" not in picture
            assert decode_embedding(v.embedding).tolist() == pytest.approx([v.scores["mean"], v.scores["mean"] / 2], rel=1e-6)
        raising = [v for v in verdicts if v.detector == "raising-test"]
        assert all(v.label == "unknown" and "always fails" in v.error for v in raising)
        assert all(v.error is None for v in verdicts if v.detector != "raising-test")  # the others went on
        merged = analysis.summary["images"]
        assert analysis.summary["version"] == 1 and len(merged) == 3
        for image_id, entry in merged.items():
            assert entry["detectors"]["raising-test"]["role"] == "error"
            assert entry["outcome"] in ("single", "unknown-generator")  # only slow-test concludes
        actions = [e.action for e in session.execute(sa.select(CustodyEvent).order_by(CustodyEvent.seq)).scalars()]
        assert actions[-2:] == ["analysis.requested", "analysis.completed"]

    listed = vestige("verdicts LAB-1 --json")
    data = json.loads(listed.stdout)
    assert data["analysis"]["status"] == "done" and len(data["verdicts"]) == 9
    assert data["summary"]["images"] == json.loads(json.dumps(merged))
    table = vestige("verdicts LAB-1")
    assert "outcome" in table.stdout and "p0.jpg" in table.stdout
    assert vestige("custody verify LAB-1").exit_code == 0


def test_running_a_task_again_changes_nothing(vestige, case_with_images, with_slow, open_workspace):
    case_with_images(2)
    assert vestige("analyze LAB-1 --detectors slow-test --wait").exit_code == 0
    ws = open_workspace()
    with ws.db.session() as session:
        analysis = latest_analysis(session, get_case(session, "LAB-1"))
        task = tasks_of(session, analysis)[0]
        before = [(v.id, v.label) for v in session.execute(sa.select(Verdict)).scalars()]
    outcome = run_analysis_task(ws, task.id, detectors=ProcessState(ws.config, workspace=ws).detector, worker="again")
    assert outcome.status == "skipped"
    # A worker lost after writing its verdicts but before marking the task done: the re-run upserts.
    with ws.db.session() as session:
        session.execute(sa.update(AnalysisTask).values(status="running"))
        session.execute(sa.update(Analysis).values(progress_done=0, finished_at=None, status="running"))
    outcome = run_analysis_task(ws, task.id, detectors=ProcessState(ws.config, workspace=ws).detector, worker="again")
    assert outcome.status == "done" and outcome.completed_analysis
    with ws.db.session() as session:
        after = [(v.id, v.label) for v in session.execute(sa.select(Verdict)).scalars()]
        analysis = latest_analysis(session, get_case(session, "LAB-1"))
        assert after == before and analysis.progress_done == analysis.progress_total == 2
        completed = session.execute(sa.select(CustodyEvent).where(CustodyEvent.action == "analysis.completed")).all()
        assert len(completed) == 2  # the forced re-completion is recorded, like any other


def test_a_task_whose_worker_keeps_dying_gives_up_with_its_verdicts_saying_so(vestige, case_with_images, with_slow, env):
    case_with_images(2)
    env["VESTIGE_JOBS__MAX_RETRIES"] = "1"
    assert vestige("analyze LAB-1 --detectors slow-test").exit_code == 0  # queued only: no --wait
    ws = Workspace.open(load_config(ROOT / "config.toml", environ=env))
    with ws.db.session() as session:
        task = session.execute(sa.select(AnalysisTask)).scalar_one()
        session.execute(sa.update(AnalysisTask).values(attempts=2, status="running"))  # two lost workers
    outcome = run_analysis_task(ws, task.id, detectors=ProcessState(ws.config, workspace=ws).detector, worker="w3")
    assert outcome.status == "failed" and outcome.completed_analysis
    with ws.db.session() as session:
        verdicts = session.execute(sa.select(Verdict)).scalars().all()
        assert len(verdicts) == 2 and all("gave up after 2 attempts" in v.error for v in verdicts)
        assert "1 task(s) failed" in latest_analysis(session, get_case(session, "LAB-1")).error
    ws.close()


def test_robustness_derivatives_are_made_once_and_recorded_as_applied_perturbations(
        vestige, case_with_images, with_slow, open_workspace):
    case_with_images(2)
    result = vestige("analyze LAB-1 --detectors slow-test --robustness --wait")
    assert result.exit_code == 0, result.stderr
    assert "robustness" in result.stdout and "contradicted under" in result.stdout
    again = vestige("analyze LAB-1 --detectors slow-test --robustness --wait")
    assert again.exit_code == 0, again.stderr
    ws = open_workspace()
    with ws.db.session() as session:
        derived = session.execute(sa.select(Image).where(Image.origin == "derived")).scalars().all()
        assert len(derived) == 2 * len(PROBES)  # not doubled by the second run
        applied = session.execute(sa.select(Perturbation).where(Perturbation.basis == "applied")).scalars().all()
        assert sorted(p.image_id for p in applied) == sorted(d.id for d in derived)
        originals = {i.id for i in session.execute(sa.select(Image).where(Image.origin == "evidence")).scalars()}
        assert {p.parent_id for p in applied} == originals
        assert {json.dumps(p.operations, sort_keys=True) for p in applied} == {json.dumps(o, sort_keys=True) for o in PROBES}
        jpeg = [d for d in derived if ".jpeg-" in d.original_filename]
        assert jpeg and all(d.format == "JPEG" for d in jpeg)  # a JPEG probe keeps its container
        assert all(d.format == "PNG" for d in derived if d not in jpeg)
        analysis = latest_analysis(session, get_case(session, "LAB-1"))
        robustness = analysis.summary["robustness"]
        assert set(robustness) == {str(i) for i in originals}
        entry = next(iter(robustness.values()))
        under = entry["detectors"]["slow-test"]["under"]
        assert set(under) == {"jpeg-90", "jpeg-75", "jpeg-50", "resize-0.75", "resize-0.5", "crop-0.9", "blur-1.0"}
        assert all(isinstance(row["holds"], bool) for row in under.values())
        assert len(analysis.summary["images"]) == 2 + 2 * len(PROBES)


def test_a_detector_that_prefers_a_gpu_goes_to_the_gpu_queue_and_loads_where_it_can(vestige, case_with_images, with_slow,
                                                                                    open_workspace):
    case_with_images(1)
    assert vestige("analyze LAB-1 --detectors gpu-test,slow-test --wait").exit_code == 0
    ws = open_workspace()
    with ws.db.session() as session:
        analysis = latest_analysis(session, get_case(session, "LAB-1"))
        assert {t.detector: t.queue for t in tasks_of(session, analysis)} == {"gpu-test": "gpu", "slow-test": "cpu"}
        verdict = session.execute(sa.select(Verdict).where(Verdict.detector == "gpu-test")).scalar_one()
    torch = pytest.importorskip("torch")
    assert verdict.evidence["loaded_on"] == ("cuda" if torch.cuda.is_available() else "cpu")


def test_analyze_wait_finishes_in_process_when_the_workers_it_waited_for_stop(vestige, case_with_images, with_slow,
                                                                              config, open_workspace):
    case_with_images(2)
    # A "worker" that is this very process: it never takes a task, and goes away once the tasks are queued.
    beat = Heartbeat(config, "pretend@test", ["cpu", "gpu"])
    beat.start()

    def stop_once_queued() -> None:
        deadline = time.monotonic() + 60
        while not pending_message_ids(config.data_dir / "broker.db") and time.monotonic() < deadline:
            time.sleep(0.05)
        beat.stop()

    watcher = threading.Thread(target=stop_once_queued)
    watcher.start()
    result = vestige("analyze LAB-1 --detectors slow-test --wait")
    watcher.join()
    assert result.exit_code == 0, result.stderr
    assert "queued on the embedded broker" in result.stdout
    assert "the workers stopped: finishing the analysis in this process" in result.stdout
    ws = open_workspace()
    with ws.db.session() as session:
        analysis = latest_analysis(session, get_case(session, "LAB-1"))
        assert analysis.status == "done" and analysis.progress_done == 2


def test_analyze_names_a_missing_case_and_an_unknown_detector(vestige, case_with_images):
    case_with_images(1)
    missing = vestige("analyze NOPE --wait")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: ") and "NOPE" in missing.stderr
    unknown = vestige("analyze LAB-1 --detectors nosuch")
    assert unknown.exit_code == 1 and "nosuch" in unknown.stderr and "metadata" in unknown.stderr
    none = vestige("verdicts LAB-1")
    assert none.exit_code == 1 and "vestige analyze LAB-1" in none.stderr


def test_start_analysis_says_where_the_work_went(case_with_images, open_workspace):
    """One launch for the CLI and the web: run here when asked and no worker can take it, else queue it."""
    from vestige.core.plugins import get_plugin_manager
    from vestige.jobs.launch import HERE, WAITING, start_analysis

    case_with_images(2)
    workspace = open_workspace()
    pm = get_plugin_manager()
    ran: list[int] = []
    with workspace.db.session() as session:
        case = get_case(session, "LAB-1")
        here = start_analysis(workspace, session, case, pm, ["metadata"], actor="A. Examiner",
                              run_here=lambda started: ran.append(started.analysis.id))
        waiting = start_analysis(workspace, session, case, pm, ["metadata"], actor="A. Examiner")
    assert here.where == HERE and ran == [here.analysis.id] and here.queues == ["cpu"]
    assert waiting.where == WAITING and len(pending_message_ids(workspace.config.data_dir / "broker.db")) == len(waiting.tasks) > 0
    assert here.skipped == [] and {t.detector for t in waiting.tasks} == {"metadata"}
