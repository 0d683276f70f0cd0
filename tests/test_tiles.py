"""Native resolution (vestige.analysis.tiles, docs/tiles.md): the grid, the cap, aggregation, the heat map, and the way
a tiled finding reaches `vestige detect --json`, the web image page and the reports."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from test_web import app, browser, client, ingest_bytes, lab  # noqa: F401  (shared fixtures)

from vestige.analysis import tiles
from vestige.analysis.detect import make_input, run_detector
from vestige.analysis.pictures import ramp
from vestige.analysis.tiles import MIN_INSIDE, RULE, TileGrid, aggregate, axis_origins
from vestige.models.domainfit import with_domain
from vestige.plugin import Finding, Picture
from vestige.plugin.training import ArtifactFile
from vestige_fingerprint.detector import FingerprintDetector

ZOO = ("real", "dcgan-s0", "dcgan-s1", "nnup-hinge", "pixelshuffle-wgangp", "stylegan-mini", "vae", "ddpm-ddim")


def png(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def fingerprint(calibration: dict | None = None) -> FingerprintDetector:
    detector = FingerprintDetector()
    artifact = detector.shipped_artifact()
    if calibration is not None:
        from safetensors.numpy import load

        tensors = {k: v for k, v in load(artifact.data).items() if k.startswith("domain.")}
        artifact = ArtifactFile.from_bytes(with_domain(artifact, {**artifact.domain, "tiles": calibration}, tensors))
    detector.use_artifact(artifact)
    detector.load("cpu")
    return detector


# -- geometry ------------------------------------------------------------------------------------

@pytest.mark.parametrize("length, side, origins", [
    (32, 32, (0,)), (64, 32, (0, 32)), (100, 32, (0, 32, 64, 68)), (33, 32, (0, 1)), (31, 32, ()), (1, 1, (0,)),
])
def test_the_grid_covers_the_axis_and_the_last_tile_is_flush_with_the_edge(length, side, origins):
    assert axis_origins(length, side) == origins
    if origins:
        assert origins[-1] + side == length
        covered = set().union(*(range(o, o + side) for o in origins))
        assert covered == set(range(length))


@pytest.mark.parametrize("width, height", [(100, 33), (96, 96), (250, 61), (32, 500)])
def test_heat_map_cells_partition_the_image(width, height):
    grid = TileGrid.cover(width, height, 32)
    area = np.zeros((height, width), dtype=int)
    for c in range(len(grid.xs)):
        for r in range(len(grid.ys)):
            x0, y0, x1, y1 = grid.cell(c, r)
            area[y0:y1, x0:x1] += 1
            x, y = grid.origin(c, r)
            assert x <= x0 and x1 <= x + 32 and y <= y0 and y1 <= y + 32  # the cell lies in its tile
    assert (area == 1).all()


@pytest.mark.parametrize("width, height, cap", [(1024, 1024, 256), (4000, 3000, 256), (4000, 3000, 100),
                                                (2000, 40, 16), (96, 96, 256), (320, 320, 1)])
def test_the_cap_keeps_an_evenly_spread_deterministic_sub_grid(width, height, cap):
    grid = TileGrid.cover(width, height, 32)
    chosen = grid.chosen(cap)
    assert chosen == grid.chosen(cap)  # a function of the size and the cap alone
    assert 0 < len(chosen) <= cap and len(set(chosen)) == len(chosen)
    if grid.total <= cap:
        assert len(chosen) == grid.total
        return
    columns, rows = sorted({c for c, _ in chosen}), sorted({r for _, r in chosen})
    assert len(chosen) == len(columns) * len(rows)  # a sub-grid
    if len(columns) > 1:  # it spans the image, first and last tile included
        assert (columns[0], columns[-1]) == (0, len(grid.xs) - 1)
    if len(rows) > 1:
        assert (rows[0], rows[-1]) == (0, len(grid.ys) - 1)
    assert len(chosen) >= 0.75 * cap or cap < 4  # the cap is used, not wasted


def test_a_1024_image_under_the_default_cap_is_a_16_by_16_sub_grid():
    chosen = TileGrid.cover(1024, 1024, 32).chosen(256)
    assert len(chosen) == 256 and sorted({c for c, _ in chosen})[:3] == [0, 2, 4]


# -- aggregation ----------------------------------------------------------------------------------

class ThreeSources(FingerprintDetector):
    """The fingerprint detector's identity with three sources, to aggregate hand-written tile findings."""

    @property
    def labels(self):
        return ("real", "gan-a", "gan-b")


def tile(p, inside=True, pictures=()):
    domain = {"in_domain": inside, "reason": None if inside else "outside the validated domain: novelty 3 above 1"}
    return Finding(detector="fingerprint", detector_version="1.0.0", label="unknown",
                   scores=dict(zip(("real", "gan-a", "gan-b"), p)), evidence={"domain": domain}, pictures=list(pictures))


CALIBRATION = {"threshold": 0.6, "accusation_threshold": 0.9}


def aggregated(findings, calibration=CALIBRATION, size=(64, 64)):
    grid = TileGrid.cover(*size, 32)
    chosen = grid.chosen(256)
    assert len(chosen) == len(findings)
    return aggregate(ThreeSources(), grid, chosen, findings, max_tiles=256, calibration=calibration)


def test_the_image_probability_is_the_renormalised_mean_log_probability_of_the_inside_tiles():
    tiles_p = [(0.02, 0.9, 0.08), (0.1, 0.8, 0.1), (0.05, 0.9, 0.05), (0.9, 0.05, 0.05)]
    finding = aggregated([tile(p, inside=i < 3) for i, p in enumerate(tiles_p)])
    logs = np.log(np.array(tiles_p[:3])).mean(axis=0)
    expected = np.exp(logs) / np.exp(logs).sum()
    assert [finding.scores[s] for s in ("real", "gan-a", "gan-b")] == pytest.approx(expected.tolist())
    assert (finding.outcome, finding.source) == ("synthetic", "gan-a")
    record = finding.evidence["tiles"]
    assert record["rule"] == RULE and record["analysed"] == 4 and record["inside"] == 3
    assert record["in_domain"] == [True, True, True, False]
    assert record["probabilities"][3] == list(tiles_p[3]) and record["labels"] == ["unknown"] * 4
    assert record["origins"] == [[0, 0], [32, 0], [0, 32], [32, 32]]
    assert finding.evidence["domain"]["tiles_inside"] == 3


def test_agreeing_tiles_leave_the_probability_on_the_scale_of_one_tile():
    # a sum of log-probabilities would turn four tiles at P(gan-a) 0.8 into near-certainty and accuse;
    # the mean keeps 0.8, below the accusation threshold 0.9 set for one image
    finding = aggregated([tile((0.15, 0.8, 0.05))] * 4)
    assert finding.scores["gan-a"] == pytest.approx(0.8) and finding.outcome == "inconclusive"
    assert "below the evidence standard" in finding.reason


def test_real_tiles_give_a_real_image_and_too_few_inside_tiles_give_no_conclusion():
    real = aggregated([tile((0.95, 0.03, 0.02))] * 4)
    assert real.outcome == "real" and real.confidence == pytest.approx(0.95)
    outside = aggregated([tile((0.02, 0.95, 0.03), inside=i == 0) for i in range(4)])
    assert MIN_INSIDE == 0.5 and outside.outcome == "inconclusive"
    assert outside.reason.startswith("outside the validated domain: only 1 of the 4 tiles of 32×32 analysed lie "
                                     "inside it, at least 2 must (first refused tile: outside the validated domain")
    assert outside.evidence["domain"]["in_domain"] is False


def test_without_an_image_level_calibration_a_tiled_image_is_not_judged():
    finding = aggregated([tile((0.01, 0.98, 0.01))] * 4, calibration=None)
    assert finding.outcome == "inconclusive" and finding.confidence is None
    assert "no image-level calibration" in finding.reason and "vestige models calibrate-tiles" in finding.reason
    assert finding.evidence["tiles"]["calibration"] is None and finding.pictures[0].name == "heatmap"


def test_a_failing_tile_makes_the_image_finding_an_error():
    broken = Finding(detector="fingerprint", detector_version="1.0.0", label="unknown", error="RuntimeError: boom")
    finding = aggregated([tile((0.9, 0.05, 0.05)), broken, tile((0.9, 0.05, 0.05)), tile((0.9, 0.05, 0.05))])
    assert finding.error == "tile at (32, 0): RuntimeError: boom" and finding.outcome == "inconclusive"


def test_the_most_suspect_tile_lends_its_pictures():
    marked = Picture("image-fingerprint", "Image fingerprint", b"\x89PNG fake bytes are fine here")
    finding = aggregated([tile((0.9, 0.05, 0.05)), tile((0.3, 0.6, 0.1), pictures=[marked]),
                          tile((0.9, 0.05, 0.05)), tile((0.5, 0.3, 0.2), inside=False)])
    assert finding.evidence["tiles"]["most_suspect"] == [32, 0]
    names = [p.name for p in finding.pictures]
    assert names == ["heatmap", "tile-32-0-image-fingerprint"]
    assert finding.pictures[1].caption.startswith("Tile at (32, 0), the highest P(synthetic) inside the domain")


# -- the heat map ------------------------------------------------------------------------------

def test_the_heat_map_colours_each_tile_by_its_probability_and_marks_the_rest():
    grey = Image.new("RGB", (128, 64), (128, 128, 128))
    grid = TileGrid.cover(128, 64, 32)
    chosen = [(0, 0), (1, 0), (2, 0), (0, 1)]  # the rest of the grid was not analysed
    values, inside = [1.0, 0.0, 0.5, 0.9], [True, True, True, False]
    from vestige.analysis.pictures import heatmap_png

    picture = Image.open(io.BytesIO(heatmap_png(grey, (128, 64), [grid.cell(c, r) for c, r in chosen], values,
                                                inside, title="fingerprint: P(synthetic)")))
    assert picture.format == "PNG" and picture.width >= 256 and picture.height > 128  # enlarged 2×, with a legend
    rgb = np.asarray(picture.convert("RGB")).astype(int)
    at = lambda c, r: rgb[r * 64 + 32, c * 64 + 17]  # noqa: E731 - inside cell (c, r), off the hatching
    red, blue = at(0, 0), at(1, 0)
    assert red[0] > red[2] + 60 and blue[2] > blue[0] + 40
    assert abs(int(at(2, 0)[0]) - int(at(2, 0)[2])) < 20  # 0.5 is neutral
    assert (rgb[64:128, 128:256] < 60).all()  # not analysed: dimmed
    hatched = rgb[64:128, 0:64]
    assert len({tuple(v) for v in hatched.reshape(-1, 3)}) == 2 and (hatched[..., 0] == hatched[..., 2]).all()
    assert ramp(1.0) == (180, 4, 38) and ramp(0.0) == (59, 76, 192)


# -- through run_detector, with the shipped fingerprint model --------------------------------------

def test_a_larger_image_is_judged_tile_by_tile_and_a_smaller_one_is_refused():
    detector = fingerprint()
    items = [make_input(png(noise(100, 40)), name="wide.png"), make_input(png(noise(20, 20)), name="tiny.png"),
             make_input(png(noise(32, 32)), name="one.png")]
    wide, tiny, one = run_detector(detector, items)
    record = wide.evidence["tiles"]
    assert record["grid"] == [4, 2] and record["analysed"] == 8 and record["total"] == 8 and record["side"] == 32
    assert record["origins"] == [[0, 0], [32, 0], [64, 0], [68, 0], [0, 8], [32, 8], [64, 8], [68, 8]]
    assert len(record["probabilities"]) == 8 and all(len(p) == len(ZOO) for p in record["probabilities"])
    assert wide.model_sha256 == detector.model_sha256 and wide.runtime_ms > 0
    assert wide.pictures[0].name == "heatmap"
    assert tiny.reason == "outside the validated domain: a 20×20 image, the model was validated on 32×32 images"
    assert "tiles" not in one.evidence and "domain" in one.evidence  # an image of the validated size is judged whole


def test_the_jpeg_gate_applies_to_the_whole_file_before_any_tile():
    detector = fingerprint()
    (finding,) = run_detector(detector, [make_input(png(noise(96, 96), "JPEG", quality=100), name="q100.jpg")])
    assert "tiles" not in finding.evidence and "JPEG" in finding.reason


def test_same_image_same_tiles_same_finding_whatever_else_is_in_the_batch():
    calibration = {"threshold": 0.5, "accusation_threshold": 0.99}
    detector = fingerprint(calibration)
    target = make_input(png(noise(96, 64, seed=3)), name="t.png")
    others = [make_input(png(noise(64 + 8 * k, 64, seed=k)), name=f"o{k}.png") for k in range(3)]
    alone = run_detector(detector, [target], max_tiles=4)[0].to_dict()
    crowded = run_detector(detector, [*others, target], max_tiles=4)[-1].to_dict()
    assert alone == crowded and alone["evidence"]["tiles"]["analysed"] == 4
    assert alone["evidence"]["tiles"]["calibration"] == calibration
    assert alone["evidence"]["tiles"]["choice"] == "an evenly spaced sub-grid of 4 tiles of the 3×2 grid (cap 4)"


def test_zoo_samples_laid_side_by_side_are_attributed_with_a_calibration(tmp_path, vestige):
    result = vestige("zoo", "sample", "dcgan-s0", "--n", "8", "--seed", "7", "--out", tmp_path / "zoo")
    assert result.exit_code == 0, result.stderr
    mosaic = Image.new("RGB", (128, 64))
    for i, path in enumerate(sorted((tmp_path / "zoo").glob("*.png"))):
        mosaic.paste(Image.open(path).convert("RGB"), ((i % 4) * 32, (i // 4) * 32))
    detector = fingerprint({"threshold": 0.5, "accusation_threshold": 0.95})
    (finding,) = run_detector(detector, [make_input(png(mosaic), name="mosaic.png")])
    assert (finding.outcome, finding.source) == ("synthetic", "dcgan-s0")
    assert finding.evidence["tiles"]["labels"].count("dcgan-s0") >= 6


# -- what a user sees ------------------------------------------------------------------------------

def test_detect_json_reports_the_tiles_and_the_rule(vestige, env, tmp_path):
    (tmp_path / "big.png").write_bytes(png(noise(200, 90)))
    result = vestige("detect", tmp_path / "big.png", "--detector", "fingerprint", "--json")
    row = json.loads(result.stdout.splitlines()[0])
    record = row["evidence"]["tiles"]
    assert record["analysed"] == 7 * 3 and record["rule"] == RULE and record["rule_text"] == tiles.RULE_TEXT
    assert row["pictures"][0]["name"] == "heatmap" and row["outcome"] == "inconclusive"
    env["VESTIGE_TILES__MAX_TILES"] = "6"
    capped = vestige("detect", tmp_path / "big.png", "--detector", "fingerprint", "--json")
    assert json.loads(capped.stdout.splitlines()[0])["evidence"]["tiles"]["analysed"] == 6


HEAT_CAPTION = "Heat map: P(synthetic) of each 32×32 tile by fingerprint"


def test_the_heat_map_reaches_the_image_page_and_the_reports(vestige, browser, lab, workspace, tmp_path):
    (tmp_path / "more").mkdir()
    (image_id,) = ingest_bytes(workspace, "CASE-A", {"wide.png": png(noise(96, 64, seed=5))}, tmp_path / "more")
    result = vestige("analyze", "CASE-A", "--detectors", "fingerprint", "--wait")
    assert result.exit_code == 0, result.stderr
    page = browser("alice").get(f"/images/{image_id}").text
    assert HEAT_CAPTION in page
    sha256 = re.search(rf'/images/{image_id}/pictures/([0-9a-f]{{64}})" alt="{re.escape(HEAT_CAPTION)}', page).group(1)
    shown = browser("alice").get(f"/images/{image_id}/pictures/{sha256}")
    assert shown.status_code == 200 and Image.open(io.BytesIO(shown.data)).width >= 96

    html = tmp_path / "report.html"
    assert vestige("report", "CASE-A", "--format", "html", "--out", html).exit_code == 0
    text = html.read_text()
    assert HEAT_CAPTION in text and text.count("data:image/png;base64,") >= 2
    report = tmp_path / "report.json"
    assert vestige("report", "CASE-A", "--format", "json", "--out", report).exit_code == 0
    document = json.loads(report.read_text())
    finding = next(f for i in document["images"] if i["id"] == image_id for f in i["findings"]
                   if f["detector"] == "fingerprint")
    assert finding["evidence"]["tiles"]["analysed"] == 6 and finding["pictures"][0]["sha256"] == sha256
    if shutil.which("pdftotext"):
        pdf = tmp_path / "report.pdf"
        assert vestige("report", "CASE-A", "--format", "pdf", "--out", pdf).exit_code == 0
        pdf_text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
        assert "Heat map: P(synthetic) of each" in " ".join(pdf_text.split())


# -- calibrating tiles on full-size references -----------------------------------------------------

def test_a_dev_set_and_an_image_level_calibration_measured_on_other_images(vestige, tmp_path):
    built = vestige("bench", "build", "tiles-dev", "--out", tmp_path / "dev", "--side", "64", "--pieces", "2",
                    "--mosaics", "1", "--whole", "1", "--generators", "dcgan-s0")
    assert built.exit_code == 0, built.stderr
    counts = json.loads(built.stdout)["images"]
    assert counts["fit"]["dcgan-s0"] == counts["test"]["dcgan-s0"] == 2 and counts["fit"]["real"] > 0
    fit_photos = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "dev/fit/real").glob("*.png")}
    test_photos = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "dev/test/real").glob("*.png")}
    assert fit_photos and test_photos and not fit_photos & test_photos  # split by photograph, never straddling
    mosaic = Image.open(tmp_path / "dev/fit/dcgan-s0/mosaic-000.png")
    assert mosaic.size == (64, 64)

    shipped = FingerprintDetector().shipped_artifact()
    assert vestige("init").exit_code == 0
    result = vestige("models", "calibrate-tiles", shipped.sha256[:12], "--images", tmp_path / "dev/fit",
                     "--test", tmp_path / "dev/test", "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)["tiles"]
    assert record["rule"] == RULE and record["threshold"] == shipped.open_set_threshold and record["rate"] == 0.01
    assert record["fit"]["images"] == counts["fit"] and record["fit"]["real_tiled_inside"] > 0
    assert record["test"]["sources"]["real"]["images"] == counts["test"]["real"]
    # the threshold lies strictly above every fitted real image's P(synthetic): none of them would be accused
    from vestige.models.tilecal import read_folder

    detector = fingerprint()
    real = [item for source, item in read_folder(tmp_path / "dev/fit") if source == "real"]
    p_syn = [f.evidence["domain"]["p_synthetic"] for f in run_detector(detector, real)
             if f.evidence["domain"].get("in_domain")]
    assert p_syn and max(p_syn) < record["accusation_threshold"]
    calibrated = fingerprint(record)
    assert all(f.outcome != "synthetic" and f.label != "synthetic" for f in run_detector(calibrated, real))
    empty = vestige("models", "calibrate-tiles", shipped.sha256[:12], "--images", tmp_path / "dev/fit/real")
    assert empty.exit_code == 1 and "holds no images in <source>/ sub-folders" in empty.stderr


# -- training from full-size references: a dataset of tiles, split by image ---------------------------

def test_folders_cut_into_tiles_keep_each_image_in_one_split_and_report_image_level_accuracy(vestige, tmp_path):
    from vestige.models.datasets import open_dataset

    built = vestige("bench", "build", "tiles-dev", "--out", tmp_path / "dev", "--side", "64", "--pieces", "4",
                    "--mosaics", "6", "--whole", "0", "--generators", "dcgan-s0,vae")
    assert built.exit_code == 0, built.stderr
    src = tmp_path / "dev/fit"
    (src / "real/too-small.png").write_bytes(png(noise(20, 40)))
    result = vestige("bench", "build", "folders", src, "--out", tmp_path / "tiles", "--tiles", "32",
                     "--tiles-per-image", "3", "--test-fraction", "0.3", "--val-fraction", "0.2")
    assert result.exit_code == 0, result.stderr
    assert "too-small.png is 20×40, smaller than one tile of 32×32" in result.stderr
    dataset = open_dataset(tmp_path / "tiles")
    assert dataset.manifest["provenance"]["tiles"] == 32 and "--tiles 32" in dataset.manifest["command"]
    clean = dataset.records(condition="clean")
    splits: dict[str, set[str]] = {}
    for record in clean:
        assert record.origin["image_size"] == [64, 64] and record.origin["tile"][2] == 32
        splits.setdefault(record.origin["file"], set()).add(record.split)
    assert all(len(s) == 1 for s in splits.values())  # tiles of one image never straddle two splits
    per_image = {f: sum(r.origin["file"] == f for r in clean) for f in splits}
    assert set(per_image.values()) == {2}  # a 2×2 grid under a cap of 3: an evenly spaced 1×2 sub-grid
    assert {r.split for r in clean} == {"train", "val", "test"}

    assert vestige("init").exit_code == 0
    trained = vestige("train", "knn", "--dataset", tmp_path / "tiles", "--json")
    assert trained.exit_code == 0, trained.stderr
    metrics = json.loads(trained.stdout)["metrics"]["validation_tiles"]
    val_images = {r.origin["file"] for r in clean if r.split == "val"}
    assert metrics["images"] == len(val_images) and metrics["tiles"] == 2 * len(val_images)
    assert 0 <= metrics["image_accuracy"] <= 1 and 0 <= metrics["tile_accuracy"] <= 1

    bench = vestige("bench", "run", "--dataset", tmp_path / "tiles", "--detectors", "knn", "--out", tmp_path / "run")
    assert bench.exit_code == 0, bench.stderr
    results = json.loads((tmp_path / "run/results.json").read_text())["results"]["knn"]
    clean_seen = results["clean/seen"]["image_level"]
    test_images = {r.origin["file"] for r in clean if r.split == "test"}
    assert clean_seen["images"] == len(test_images) and clean_seen["tiles"] == results["clean/seen"]["n"]
    assert results["reshared/seen"]["image_level"]["images"] == len(test_images)  # copies map to their image
