"""``vestige analyze``, ``vestige verdicts`` and ``vestige worker``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
import sqlalchemy as sa

from vestige.analysis.analyses import latest_analysis
from vestige.analysis.robustness import entry_change
from vestige.analysis.serialise import analysis_dict, verdict_as_dict
from vestige.analysis.verdicts import analysis_verdicts
from vestige.cli.app import State, cli, echo_json, echo_table, json_option, pass_state
from vestige.core.errors import NotFoundError
from vestige.db.models import Analysis, Image
from vestige.evidence.cases import get_case


def _progress_reporter(label: str):  # type: ignore[no-untyped-def]
    """A bar on a terminal; otherwise a line at most every 5 s (and at the end)."""
    if sys.stderr.isatty():
        bar = click.progressbar(length=1, label=label, file=sys.stderr, show_pos=True)
        bar.__enter__()

        def update(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)
            if done >= total:
                bar.__exit__(None, None, None)

        return update
    last = [0.0]

    def line(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= 5:
            last[0] = now
            click.echo(f"{label}: {done}/{total} verdicts", err=True)

    return line


@cli.command()
@click.argument("reference")
@click.option("--detectors", "names", default="", help="Comma-separated detector names (default: every installed detector).")
@click.option("--robustness", is_flag=True, help="Also analyse JPEG/resize/crop/blur derivatives of each image.")
@click.option("--wait", is_flag=True, help="Wait for the verdicts, with a progress bar, and print them.")
@click.option("--by", "actor", default=None, help="Who requests it (default: VESTIGE_ACTOR, else [vestige] default_actor).")
@pass_state
def analyze(state: State, reference: str, names: str, robustness: bool, wait: bool, actor: str | None) -> None:
    """Run detectors on the images of case REFERENCE, on workers.

    On the embedded default with no `vestige worker` running, --wait runs the
    work in this process instead.
    """
    from vestige.jobs.dispatch import run_in_process, wait_for_analysis
    from vestige.jobs.launch import HERE, WAITING, Started, start_analysis, workers_can_take
    from vestige.jobs.recovery import stall_reason
    from vestige.jobs.settings import uses_embedded_broker

    workspace, config = state.workspace, state.config
    named = [n.strip() for n in names.split(",") if n.strip()]
    by = state.actor(actor)

    def announce(started: Started) -> None:
        if started.skipped:
            click.echo(f"skipping {', '.join(started.skipped)}: no trained model (docs/models.md)", err=True)
        analysis = started.analysis
        click.echo(f"analysis {analysis.id}: {len(analysis.detectors)} detector(s) on {len(analysis.options['images'])}"
                   f" image(s), {len(started.tasks)} task(s)")

    def run_here(started: Started) -> None:
        announce(started)
        click.echo("no worker is running: running the analysis in this process (start `vestige worker` to use the queue)")
        run_in_process(workspace, started.analysis.id, progress=_progress_reporter("analysing"))

    with workspace.db.session() as session:
        case = get_case(session, reference)
        started = start_analysis(workspace, session, case, state.pm, named, actor=by, robustness=robustness,
                                 run_here=run_here if wait else None)
    analysis, queues = started.analysis, started.queues
    if started.where != HERE:
        announce(started)
        embedded = uses_embedded_broker(config)
        click.echo(f"queued on {'the embedded broker' if embedded else 'the broker'}, queues {', '.join(queues)}")
        if not wait:
            if started.where == WAITING:
                click.echo("no worker is running yet: start `vestige worker` to run it")
            click.echo(f"`vestige verdicts {reference}` shows the verdicts once workers have run it")
            return
        click.echo("waiting for workers")
        progress = _progress_reporter("analysing")
        stall = StallWatch(config.jobs.lost_worker_seconds)
        while (current := wait_for_analysis(workspace, analysis.id, progress=progress, timeout_s=5)).finished_at is None:
            if not workers_can_take(workspace, queues):
                # Every local worker is gone (stopped, or killed): don't wait forever.
                click.echo("the workers stopped: finishing the analysis in this process")
                run_in_process(workspace, analysis.id, progress=progress)
            elif stall.stalled(current.progress_done):
                click.echo(f"no progress for {stall.seconds} s: {stall_reason(workspace.db, config, analysis.id)}",
                           err=True)
    with workspace.db.session() as session:
        _show_summary(session, session.get(Analysis, analysis.id))


class StallWatch:
    """Says once per stall when the progress count has not moved for ``seconds``."""

    def __init__(self, seconds: int) -> None:
        self.seconds, self._done, self._since, self._told = seconds, -1, time.monotonic(), False

    def stalled(self, done: int) -> bool:
        now = time.monotonic()
        if done != self._done:
            self._done, self._since, self._told = done, now, False
            return False
        if not self._told and now - self._since >= self.seconds:
            self._told = True
            return True
        return False


def _image_rows(session, analysis: Analysis) -> dict[int, Image]:  # type: ignore[no-untyped-def]
    ids = analysis.options.get("images", [])
    return {i.id: i for i in session.execute(sa.select(Image).where(Image.id.in_(ids))).scalars()} if ids else {}


def _show_summary(session, analysis: Analysis) -> None:  # type: ignore[no-untyped-def]
    summary = analysis.summary or {}
    images = _image_rows(session, analysis)
    click.echo(f"analysis {analysis.id} of {analysis.created_at:%Y-%m-%d %H:%M} UTC: {analysis.status}, "
               f"{analysis.progress_done}/{analysis.progress_total} verdicts" + (f"; {analysis.error}" if analysis.error else ""))
    if not summary.get("images"):
        return
    rows = []
    for image_id, merged in summary["images"].items():
        image = images.get(int(image_id))
        if image is not None and image.origin == "derived":
            continue
        findings = " ".join(f"{name}={row['label'] if not row['error'] else 'error'}" for name, row in merged["detectors"].items())
        rows.append([image_id, image.original_filename if image else "?", merged["label"], merged["source"],
                     merged["outcome"], findings])
    echo_table(rows, ["image", "file", "label", "source", "outcome", "detectors"])
    robustness = summary.get("robustness") or {}
    if robustness:
        click.echo()
        click.echo("robustness: does the verdict hold under each perturbation (same label and generator)?")
        table = []
        for image_id, entry in robustness.items():
            for name, row in [("merged", entry["merged"]), *entry["detectors"].items()]:
                under = row["under"]
                changes = {p: entry_change(r, row) for p, r in under.items()}
                held = [p for p, c in changes.items() if c == "holds"]
                weaker = [p for p, c in changes.items() if c == "weakens"]
                against = [p for p, c in changes.items() if c == "contradicts"]
                table.append([image_id, name, row["label"], f"{len(held)}/{len(under)}", ", ".join(weaker) or "-",
                              ", ".join(against) or "-"])
        echo_table(table, ["image", "verdict of", "label", "holds", "no conclusion under", "contradicted under"])


@cli.command()
@click.argument("reference")
@click.option("--analysis", "analysis_id", type=int, default=None, help="An analysis of the case (default: the latest).")
@json_option
@pass_state
def verdicts(state: State, reference: str, analysis_id: int | None, as_json: bool) -> None:
    """Show the merged verdicts of a case's latest analysis (every finding with --json)."""
    from vestige.jobs.recovery import waiting_reason

    with state.workspace.db.session() as session:
        case = get_case(session, reference)
        analysis = session.get(Analysis, analysis_id) if analysis_id else latest_analysis(session, case)
        if analysis is None or analysis.case_id != case.id:
            raise NotFoundError(f"case {reference} has no analysis{f' {analysis_id}' if analysis_id else ''}; "
                                f"run `vestige analyze {reference}`")
        if analysis_id is None and analysis.finished_at is None:
            # Say that the newest is not done, and why it may never be; then show the latest finished one, if any.
            newest = analysis
            why = waiting_reason(session, state.config, newest)
            finished = latest_analysis(session, case, finished=True)
            click.echo(f"analysis {newest.id}, the newest, is {newest.status} ({newest.progress_done}/"
                       f"{newest.progress_total} verdicts)" + (f": {why}" if why else "") +
                       (f"; showing analysis {finished.id}, the latest finished" if finished else ""), err=True)
            analysis = finished or newest
        if as_json:
            echo_json(_analysis_json(session, analysis))
        else:
            _show_summary(session, analysis)


def _analysis_json(session, analysis: Analysis) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {
        "analysis": analysis_dict(analysis),
        "verdicts": [verdict_as_dict(v) for v in analysis_verdicts(session, analysis)],
        "summary": analysis.summary,
    }


@cli.command()
@click.option("--queues", default="", help="Comma-separated queues to consume (default: every queue in jobs.queues).")
@click.option("--concurrency", type=int, default=None, help="Worker processes (default: one per CPU).")
@click.option("--loglevel", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              default=None, help="Log level (default: -v/-vv if given, else [logging] level).")
@pass_state
def worker(state: State, queues: str, concurrency: int | None, loglevel: str | None) -> None:
    """Run a worker that takes analysis tasks from the queues, e.g. --queues gpu --concurrency 1."""
    from vestige.jobs.worker import start_worker

    chosen = [q.strip() for q in queues.split(",") if q.strip()] or list(state.config.jobs.queues)
    state.workspace  # fail now, with a sentence, if the database is not initialised
    start_worker(state.config, queues=chosen, concurrency=concurrency,
                 loglevel=(loglevel or state.service_log_level()).upper())
