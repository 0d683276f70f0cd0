"""``vestige generators``: the generators plugins register, and converting a lab's checkpoint to safetensors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from vestige.plugin.commands import State, echo_json, echo_table, pass_state

log = logging.getLogger(__name__)


@click.group("generators")
def generators() -> None:
    """The generators plugins register for verification by inversion (docs/plugins.md)."""


def calibration_state(name: str, spec: Any, calibrations: dict[str, Any], set_sha256: str | None) -> dict[str, Any]:
    """What the calibration set in use holds for generator ``name``, as ``vestige generators list`` shows it."""
    from vestige_inversion.calibration import Calibration
    from vestige_inversion.detector import OPT_IN_FAMILIES

    cal = calibrations.get(name)
    opt_in = str(spec.metadata.get("family", "")).lower() in OPT_IN_FAMILIES
    if cal is None:
        state = "not calibrated"
    elif not isinstance(cal, Calibration):
        state = "first format, not used: recalibrate"
    elif cal.weights_sha256 != spec.weights_sha256:
        state = "calibrated with other weights, not used: recalibrate"
    else:
        state = "calibrated"
    out: dict[str, Any] = {"state": state, "set_sha256": set_sha256, "candidate_by_default": not opt_in}
    if isinstance(cal, Calibration):
        out.update(cal.summary())
    return out


@generators.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list, one object per generator.")
@pass_state
def list_command(state: State, as_json: bool) -> None:
    """Every registered generator: its plugin, output and latent, weights and calibration state."""
    from vestige.plugin.commands import choose, optional_registry
    from vestige.plugin.services import format_exception_line
    from vestige_inversion.calibration import unpack_set
    from vestige_inversion.detector import InversionDetector
    from vestige_inversion.generators import LoadedGenerator, registered_generators

    with optional_registry(state) as registry:
        artifact = choose(InversionDetector(), registry)
    calibrations = unpack_set(artifact) if artifact is not None else {}
    rows = []
    for name, (plugin, spec) in sorted(registered_generators().items()):
        inp = spec.input_spec
        row: dict[str, Any] = {
            "name": name, "plugin": plugin, "version": spec.version, "latent_shape": list(inp.latent_shape),
            "distribution": inp.distribution, "num_classes": inp.num_classes, "encoder": spec.encoder is not None,
            "weights_sha256": spec.weights_sha256,
            "calibration": calibration_state(name, spec, calibrations, artifact.sha256 if artifact else None),
        }
        try:
            row["output_shape"] = list(LoadedGenerator.load(spec).output_shape)
        except Exception as exc:  # one broken plugin model must not hide the others
            log.warning("generator %s cannot be loaded", name, exc_info=True)
            row["output_shape"] = None
            row["error"] = format_exception_line(exc)
        rows.append(row)
    if as_json:
        echo_json(rows)
        return
    table = []
    for r in rows:
        cal = r["calibration"]
        shown = cal["state"]
        if cal["state"] == "calibrated":
            shown = (f"calibrated: own {100 * cal['own_accept']:.0f} % / negatives {100 * cal['false_accept']:.1f} % "
                     f"accepted (n {cal['n']} + {cal['n_negatives']}, {cal['steps']} steps × {cal['restarts']})")
        if not cal["candidate_by_default"]:
            shown += "; opt-in"
        output = "×".join(map(str, r["output_shape"])) if r["output_shape"] else f"error: {r['error']}"
        latent = "×".join(map(str, r["latent_shape"])) + f" {r['distribution']}"
        table.append([r["name"], r["plugin"], output, latent, r["num_classes"] or "–", "yes" if r["encoder"] else "no",
                      (r["weights_sha256"] or "–")[:12], shown])
    echo_table(table, ["generator", "plugin", "output", "latent", "classes", "encoder", "weights", "calibration"])


@generators.command("convert")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="A folder (the file is named <name>-<sha256[:8]>.safetensors there) or a .safetensors file.")
@click.option("--key", default=None, help="The checkpoint entry that holds the state dict (default: found).")
@click.option("--name", default=None, help="The file name's stem in a folder (default: the checkpoint's).")
def convert_command(checkpoint: Path, out: Path, key: str | None, name: str | None) -> None:
    """Convert a pickled torch checkpoint's weights to safetensors and print the file's SHA-256.

    The pickle is read with torch.load(weights_only=True), which refuses anything but tensors and plain containers.
    """
    from vestige.plugin.weightfiles import convert_checkpoint

    path, sha = convert_checkpoint(checkpoint, out, key=key, name=name)
    echo_json({"file": str(path), "sha256": sha, "size": path.stat().st_size})
