"""The built-in perturbation plugin (registered, deterministic, parameters as recorded) and `vestige perturb`."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import sqlalchemy as sa
from conftest import photo
from PIL import Image
from test_ingest import snapshot

from vestige.analysis.robustness import PROBES, apply_chain, get_perturbations, probe_name
from vestige.core.errors import PluginError
from vestige.core.plugins import get_plugin_manager
from vestige.evidence.derivatives import parse_operation
from vestige.plugin import ENCODED_IMAGE_KEY
from vestige_perturb import (
    CORRUPTIONS, OPERATIONS, SEEN_CORRUPTIONS, UNSEEN_CORRUPTIONS, apply_ops, augment, random_corruption,
)
import vestige_perturb


@pytest.fixture(scope="module")
def operations():
    return get_perturbations(get_plugin_manager())


def test_every_probe_operation_is_provided_by_the_builtin_plugin(operations):
    assert {op["op"] for ops in PROBES for op in ops} <= set(operations)
    assert "perturb" in dict(get_plugin_manager().list_name_plugin())
    for op in operations.values():
        assert op.description and op.parameters


@pytest.mark.parametrize("ops", PROBES, ids=[probe_name(o) for o in PROBES])
def test_a_probe_gives_the_same_bytes_every_time(operations, ops):
    image = photo(3, size=80)
    first = apply_chain(image.copy(), ops, operations, seed=b"s")
    assert first == apply_chain(image.copy(), ops, operations, seed=b"s")
    out = Image.open(io.BytesIO(first))
    assert out.format == ("JPEG" if ops[0]["op"] == "jpeg" else "PNG")
    expected = {"resize": (round(80 * ops[0]["params"].get("scale", 1)),) * 2, "crop": (72, 72)}.get(ops[0]["op"], (80, 80))
    assert out.size == expected


def test_jpeg_quality_changes_the_bytes_and_leaves_the_encoded_file(operations):
    image = photo(1, size=64)
    q90 = operations["jpeg"].apply(image, rng=np.random.default_rng(0), quality=90)
    q50 = operations["jpeg"].apply(image, rng=np.random.default_rng(0), quality=50)
    assert q90.info[ENCODED_IMAGE_KEY] != q50.info[ENCODED_IMAGE_KEY]
    assert len(q50.info[ENCODED_IMAGE_KEY]) < len(q90.info[ENCODED_IMAGE_KEY])


@pytest.mark.parametrize("op, params", [("jpeg", {"quality": 0}), ("resize", {"scale": 0}), ("crop", {"fraction": 1.5}),
                                        ("blur", {"radius": -1})])
def test_out_of_range_parameters_are_refused(operations, op, params):
    with pytest.raises(ValueError):
        operations[op].apply(photo(0), rng=np.random.default_rng(0), **params)


def test_an_operation_nobody_provides_is_named(operations):
    with pytest.raises(PluginError, match="swirl"):
        apply_chain(photo(0), [{"op": "swirl", "params": {}}], operations, seed=b"")


# --- every operation of the built-in plugin ------------------------------------------------------

NAMES = sorted(OPERATIONS)
#: Parameters that make an operation draw from its generator (the defaults do for the others that draw).
DRAWING = {"crop": {"position": "random"}}
#: Defaults that change the size: resize 0.5, crop 0.9.
SIZE = {"resize": lambda w, h: (round(w * 0.5), round(h * 0.5)), "crop": lambda w, h: (round(w * 0.9), round(h * 0.9))}
CONTAINER = {"jpeg": "JPEG", "corrupt-jpeg-compression": "JPEG", "webp": "WEBP"}


def wide(seed: int = 0) -> Image.Image:
    """A 40×24 picture: not square, so a transposed axis shows."""
    return photo(seed, size=40).crop((0, 8, 40, 32))


def test_the_seen_and_unseen_corruptions_are_the_nineteen_of_repmix(operations):
    assert len(SEEN_CORRUPTIONS) == 15 and len(UNSEEN_CORRUPTIONS) == 4
    assert not set(SEEN_CORRUPTIONS) & set(UNSEEN_CORRUPTIONS)
    assert set(SEEN_CORRUPTIONS) | set(UNSEEN_CORRUPTIONS) == set(CORRUPTIONS)
    assert {n.removeprefix("corrupt-") for n in UNSEEN_CORRUPTIONS} == {"glass-blur", "motion-blur", "zoom-blur", "snow"}
    assert set(OPERATIONS) <= set(operations)  # all registered through the hook
    assert {"jpeg", "webp", "resize", "crop", "blur", "noise", "brightness", "contrast", "saturation", "gamma",
            "sharpen", "rotate"} <= set(OPERATIONS)
    assert "vestige_perturbations" in vestige_perturb.__all__ and "random_corruption" in vestige_perturb.__all__


@pytest.mark.parametrize("name", NAMES)
def test_an_operation_is_deterministic_recorded_and_valid(operations, name):
    record = parse_operation(name, operations)
    assert record == {"op": name, "params": dict(operations[name].parameters)}
    replayed = json.loads(json.dumps(record))  # what perturbation history stores, read back
    first = apply_chain(wide(), [record], operations, seed=b"7")
    assert first == apply_chain(wide(), [replayed], operations, seed=b"7")
    out = Image.open(io.BytesIO(first))
    assert out.format == CONTAINER.get(name, "PNG")
    assert out.mode == "RGB"
    assert out.size == SIZE.get(name, lambda w, h: (w, h))(40, 24)
    assert operations[name].description


@pytest.mark.parametrize("name", NAMES)
def test_only_operations_that_draw_depend_on_the_seed(operations, name):
    record = {"op": name, "params": DRAWING.get(name, {})}
    outputs = {apply_chain(wide(1), [record], operations, seed=s) for s in (b"1", b"2", b"3")}
    assert len(outputs) == (3 if OPERATIONS[name].draws_from_rng else 1)


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_out_of_range_is_refused_in_one_line(name):
    op = OPERATIONS[name]
    for key, default in op.parameters.items():
        bad = ["bogus"] if isinstance(default, str) else [-1000, 1000, "x"]
        if key == "severity":
            bad += [0, 6, 2.5]
        for value in bad:
            with pytest.raises(ValueError) as caught:
                op.apply(wide(), rng=np.random.default_rng(0), **{key: value})
            message = str(caught.value)
            assert "\n" not in message and name in message and key in message
    with pytest.raises(ValueError, match="no parameter 'nonsense'"):
        op.apply(wide(), rng=np.random.default_rng(0), nonsense=1)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_higher_severity_changes_a_small_image_more(name):
    image = photo(4, size=32)
    pixels = np.asarray(image, dtype=float)

    def change(severity: int) -> float:
        out = CORRUPTIONS[name].apply(image, rng=np.random.default_rng(0), severity=severity)
        assert out.size == (32, 32) and out.mode == "RGB"
        return float(np.abs(np.asarray(out, dtype=float) - pixels).mean())

    assert 0 < change(1) < change(5)


def test_random_corruption_draws_the_corruption_and_severity_from_the_generator():
    image = photo(5, size=32)
    seen = set()
    for seed in range(60):
        out, record = random_corruption(image, np.random.default_rng(seed))
        again, same = random_corruption(image, np.random.default_rng(seed))
        assert out.tobytes() == again.tobytes() and record == same
        assert record["op"] in SEEN_CORRUPTIONS and record["params"]["severity"] in range(1, 6)
        assert out.size == (32, 32) and out.mode == "RGB"
        seen.add(record["op"])
    assert len(seen) >= 12  # the draw covers the set, not one favourite
    _, record = random_corruption(image, np.random.default_rng(0), names=UNSEEN_CORRUPTIONS, severities=(2,))
    assert record["op"] in UNSEEN_CORRUPTIONS and record["params"] == {"severity": 2}


def test_a_corruption_record_replays_the_same_image():
    image, rng = photo(6, size=32), np.random.default_rng(11)
    out, record = random_corruption(image, rng)
    replay_rng = np.random.default_rng(11)
    replay_rng.integers(15), replay_rng.integers(5)  # the two draws that chose the corruption and the severity
    assert apply_ops(image, [record], replay_rng).tobytes() == out.tobytes()


def test_augment_corrupts_with_the_given_probability():
    image = photo(7, size=32)
    assert augment(image, np.random.default_rng(0), p=0.0) is image
    rng = np.random.default_rng(1)
    changed = sum(augment(image, rng).tobytes() != image.tobytes() for _ in range(200))
    assert 180 <= changed <= 200  # p = 0.95


def test_apply_ops_runs_a_chain_and_names_an_unknown_operation():
    out = apply_ops(wide(), [{"op": "rotate", "params": {"degrees": 10, "border": "crop"}}, {"op": "gamma"}],
                    np.random.default_rng(0))
    assert out.width < 40 and out.height < 24
    with pytest.raises(ValueError, match="swirl"):
        apply_ops(wide(), [{"op": "swirl"}], np.random.default_rng(0))


@pytest.mark.parametrize("chain, container", [
    ([{"op": "jpeg", "params": {"quality": 70}}, {"op": "resize", "params": {"scale": 0.5}}], "PNG"),
    ([{"op": "resize", "params": {"scale": 0.5}}, {"op": "jpeg", "params": {"quality": 70}}], "JPEG"),
    ([{"op": "jpeg", "params": {"quality": 70}}, {"op": "webp", "params": {"quality": 60}}], "WEBP"),
    ([{"op": "webp"}, {"op": "corrupt-fog", "params": {"severity": 2}}], "PNG"),
])
def test_a_chain_keeps_an_encoded_file_only_when_the_last_step_made_it(operations, chain, container):
    data = apply_chain(photo(2, size=48), chain, operations, seed=b"")
    out = Image.open(io.BytesIO(data))
    assert out.format == container
    assert out.size == ((24, 24) if chain[0]["op"] == "resize" or chain[-1]["op"] == "resize" else (48, 48))


@pytest.mark.parametrize("position, box", [("centre", (2, 1, 38, 23)), ("top-left", (0, 0, 36, 22)),
                                           ("bottom-right", (4, 2, 40, 24)), ("top-right", (4, 0, 40, 22))])
def test_crop_positions(position, box):
    out = OPERATIONS["crop"].apply(wide(), rng=np.random.default_rng(0), fraction=0.9, position=position)
    assert out.tobytes() == wide().crop(box).tobytes()


def test_rotate_keeps_the_size_or_crops_inside_and_zero_degrees_changes_nothing():
    rotate, rng = OPERATIONS["rotate"], np.random.default_rng(0)
    assert rotate.apply(wide(), rng=rng, degrees=0).tobytes() == wide().tobytes()
    assert rotate.apply(wide(), rng=rng, degrees=-12).size == (40, 24)
    cropped = rotate.apply(wide(), rng=rng, degrees=12, border="crop")
    assert cropped.width < 40 and cropped.height < 24
    black = np.asarray(rotate.apply(wide(), rng=rng, degrees=12, border="black"))
    assert black[0, 0].sum() == 0 and np.asarray(rotate.apply(wide(), rng=rng, degrees=12))[0, 0].sum() > 0


# --- vestige perturb --------------------------------------------------------------------------------

CASE = "LAB-2026-0007"
CHAIN = [{"op": "jpeg", "params": {"quality": 70}}, {"op": "resize", "params": {"scale": 0.5, "filter": "lanczos"}}]


@pytest.fixture
def evidence(vestige, make_photo):
    """A case holding one 64×64 JPEG, image 1."""
    assert vestige("init").exit_code == 0
    assert vestige("case", "new", "--ref", CASE, "--title", "Re-shared pictures").exit_code == 0
    assert vestige("ingest", CASE, make_photo("a.jpg", seed=3)).exit_code == 0
    return 1


def rows(config, model, **where):
    from vestige.db import Database

    db = Database.from_url(config.database_url)
    try:
        with db.session() as session:
            query = sa.select(model).filter_by(**where)
            return [{c.name: getattr(r, c.name) for c in model.__table__.columns} for r in session.scalars(query)]
    finally:
        db.dispose()


def test_perturb_adds_the_derived_image_with_its_applied_chain(vestige, evidence, config, workspace):
    from vestige.db.models import CustodyEvent, Image as ImageRow, Perturbation

    original = rows(config, ImageRow, id=evidence)[0]
    stored = workspace.store.get(original["blob_sha256"])
    result = vestige("perturb", evidence, "--op", "jpeg:quality=70", "--op", "resize:scale=0.5", "--json")
    assert result.exit_code == 0, result.stderr
    made = json.loads(result.stdout)
    assert made["created"] is True and made["parent_id"] == evidence and made["case"] == CASE
    assert made["operations"] == CHAIN and (made["width"], made["height"]) == (32, 32) and made["format"] == "PNG"

    derived = rows(config, ImageRow, id=made["image_id"])[0]
    assert derived["origin"] == "derived" and derived["blob_sha256"] == made["sha256"]
    assert derived["case_id"] == original["case_id"]
    history = rows(config, Perturbation, image_id=made["image_id"], basis="applied")
    assert len(history) == 1 and history[0]["parent_id"] == evidence and history[0]["operations"] == CHAIN
    events = [e for e in rows(config, CustodyEvent) if e["action"] == "image.ingested"]
    details = json.loads(events[-1]["details"])
    assert details["image_id"] == made["image_id"] and details["origin"] == "derived" and "seed 0" in details["source"]
    assert vestige("custody", "verify", CASE).exit_code == 0
    # The evidence is untouched: same row, same bytes.
    assert rows(config, ImageRow, id=evidence)[0] == original
    assert workspace.store.get(original["blob_sha256"]) == stored

    shown = vestige("image", "show", made["image_id"])
    assert "applied: jpeg(quality=70), resize(scale=0.5, filter=lanczos) from image 1" in shown.stdout


def test_the_same_chain_and_seed_reports_the_image_made_before(vestige, evidence, config):
    first = vestige("perturb", evidence, "--op", "noise:sigma=8", "--seed", "5", "--json")
    before = snapshot(config)
    again = vestige("perturb", evidence, "--op", "noise:sigma=8", "--seed", "5", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["created"] is False
    assert json.loads(again.stdout)["image_id"] == json.loads(first.stdout)["image_id"]
    assert snapshot(config) == before
    other = vestige("perturb", evidence, "--op", "noise:sigma=8", "--seed", "6", "--json")
    assert json.loads(other.stdout)["created"] is True
    assert json.loads(other.stdout)["sha256"] != json.loads(first.stdout)["sha256"]
    text = vestige("perturb", evidence, "--op", "noise:sigma=8", "--seed", "6")
    assert "already made" in text.stdout and json.loads(other.stdout)["sha256"] in text.stdout


@pytest.mark.parametrize("args, message", [
    (["99", "--op", "jpeg"], "no image with id 99"),
    (["1", "--op", "swirl"], "no perturbation operation named 'swirl'; operations: blur,"),
    (["1", "--op", "jpeg:q=70"], "jpeg has no parameter 'q'; its parameters: quality"),
    (["1", "--op", "jpeg:quality=high"], "jpeg quality takes an integer, not 'high'"),
    (["1", "--op", "jpeg:quality=300"], "jpeg quality must be an integer in [1, 100], not 300"),
    (["1", "--op", "corrupt-fog:severity=9"], "corrupt-fog severity must be an integer in [1, 5], not 9"),
])
def test_a_bad_request_gives_one_line_and_writes_nothing(vestige, evidence, config, args, message):
    before = snapshot(config)
    result = vestige("perturb", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(config) == before


def test_a_closed_case_takes_no_derived_image(vestige, evidence, config):
    assert vestige("case", "close", CASE).exit_code == 0
    before = snapshot(config)
    result = vestige("perturb", evidence, "--op", "blur")
    assert result.exit_code == 1 and "closed" in result.stderr
    assert snapshot(config) == before


def test_perturb_list_shows_every_operation_with_its_parameters(vestige):
    listed = json.loads(vestige("perturb", "--list", "--json").stdout)
    assert {r["name"] for r in listed} >= set(OPERATIONS)
    assert next(r for r in listed if r["name"] == "resize")["parameters"] == {"scale": 0.5, "filter": "lanczos"}
    table = vestige("perturb", "--list").stdout
    assert "corrupt-snow" in table and "severity=3" in table
    assert vestige("perturb", "1").exit_code == 2  # no --op


def test_bench_perturb_writes_the_training_chain_and_every_operation(vestige, tmp_path):
    out = tmp_path / "perturb.json"
    result = vestige("bench", "perturb", "--n", "20", "--per-op", "2", "--repeats", "1", "--out", out)
    assert result.exit_code == 0, result.stderr
    written = json.loads(out.read_text())
    assert written["size"] == 32 and written["training_chain"]["images_per_s"] > 0
    assert set(written["operations"]) >= set(OPERATIONS)
    assert "training chain" in result.stdout and "corrupt-snow" in result.stdout
