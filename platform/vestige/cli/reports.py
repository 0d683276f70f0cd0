"""``vestige report`` and ``vestige verify``: exporting a case, checking a bundle offline."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vestige.cli.app import State, cli, echo_json, json_option, pass_state
from vestige.evidence.archives import ArchiveLimits
from vestige.evidence.bundleverify import verify_bundle
from vestige.reports.export import FORMATS, export_report


@cli.command("report")
@click.argument("reference")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="json (canonical), html, pdf, or a signed bundle (zip).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="File to write.")
@click.option("--by", "actor", default=None, help="Who exports it (default: VESTIGE_ACTOR, else [vestige] default_actor).")
@pass_state
def report_command(state: State, reference: str, fmt: str, out: Path, actor: str | None) -> None:
    """Write the report of case REFERENCE; it is also kept in the evidence store and the custody log."""
    exported = export_report(state.workspace, state.pm, reference, fmt=fmt, out=out, actor=state.actor(actor))
    click.echo(f"wrote {exported.path} ({exported.format}, {exported.size} bytes, sha256 {exported.sha256}); "
               f"report {exported.report_id} recorded in the custody log of {reference}")


@cli.command("verify")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public-key", "public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The lab's published public key (PEM). Without it, the key inside the bundle is used.")
@json_option
@pass_state
def verify_command(state: State, bundle: Path, public_key: Path | None, as_json: bool) -> None:
    """Check an evidence bundle offline: every file's SHA-256, the signature, the custody chain, the report.

    Exit 0 when everything holds; otherwise exit 1 and name each file that fails.
    """
    ingest = state.config.ingest
    limits = ArchiveLimits(ingest.archive_max_members, ingest.archive_max_member_bytes, ingest.archive_max_total_bytes)
    check = verify_bundle(bundle, public_key_pem=public_key.read_bytes() if public_key else None, limits=limits)
    if as_json:
        echo_json(check.to_dict())
    else:
        for name, problem in check.problems:
            click.echo(f"FAIL {name}: {problem}", err=True)
        for note in check.notes:
            click.echo(f"note: {note}")
        if check.ok:
            click.echo(f"bundle verified: {check.files_checked} files match the signed manifest, signature valid "
                       f"(key {check.key_fingerprint}), custody chain intact ({check.custody_events} events)")
        else:
            click.echo(f"bundle REJECTED: {len(check.problems)} problem(s)", err=True)
    if not check.ok:
        sys.exit(1)
