"""``vestige keys ...``: the lab's Ed25519 signing key for evidence bundles."""

from __future__ import annotations

from pathlib import Path

import click

from vestige.cli.app import State, cli, pass_state
from vestige.evidence.keys import LabKeyFiles, fingerprint, init_lab_key, load_lab_public_key, public_key_pem


@cli.group("keys")
def keys_group() -> None:
    """The lab's signing key (kept in the data directory, never in the repository)."""


@keys_group.command("init")
@pass_state
def keys_init(state: State) -> None:
    """Create the lab's Ed25519 key pair; refuses to replace an existing one."""
    files, key_fingerprint = init_lab_key(state.config)
    click.echo(f"created the lab key: private {files.private} (mode 0600), public {files.public}")
    click.echo(f"fingerprint {key_fingerprint}")


@keys_group.command("show")
@pass_state
def keys_show(state: State) -> None:
    """Print where the key is and its fingerprint."""
    key = load_lab_public_key(state.config)
    files = LabKeyFiles.of(state.config)
    click.echo(f"private key  {files.private}\npublic key   {files.public}\nfingerprint  {fingerprint(key)}")


@keys_group.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the PEM here instead of printing it.")
@pass_state
def keys_export(state: State, out: Path | None) -> None:
    """Print (or write) the public key, for those who will verify the lab's bundles."""
    pem = public_key_pem(load_lab_public_key(state.config))
    if out is None:
        click.echo(pem.decode("ascii"), nl=False)
    else:
        out.write_bytes(pem)
        click.echo(f"wrote the public key to {out}")
