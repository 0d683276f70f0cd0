"""Files for ``make demo``: scikit-image's bundled photographs and what a case makes of them.

``python -m vestige.cli.demo FOLDER`` writes:

- ``photos/``: four of scikit-image's bundled photographs as JPEG and PNG;
- ``reshared/``: one of them re-encoded at JPEG quality 50 and one resized to
  half size, as a forum would, so ingest finds them as near-duplicates and
  estimates their JPEG quality;
- ``upload.zip``: a zip holding a photograph and an exact copy of another;
- ``generator-metadata.png``: a photograph to which the demo itself writes an
  Automatic1111-style ``parameters`` text chunk, so the metadata detector has
  a generator signature to find (the pixels are a real photograph: the point
  is that metadata alone says "synthetic", and metadata can lie);
- ``refused/``: a text file named ``.jpg`` and a zip with a ``../`` member,
  which ingest must refuse.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

from PIL import Image, PngImagePlugin


def _photographs() -> dict[str, Image.Image]:
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise SystemExit("make demo needs scikit-image (pip install -e '.[dev]')") from None
    return {
        "astronaut": Image.fromarray(data.astronaut()),
        "coffee": Image.fromarray(data.coffee()),
        "chelsea": Image.fromarray(data.chelsea()),
        "rocket": Image.fromarray(data.rocket()),
    }


def prepare(folder: Path) -> list[Path]:
    """Write the demo's files under ``folder`` and return them."""
    photos = _photographs()
    written: list[Path] = []

    def save(image: Image.Image, path: Path, **kwargs: object) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, **kwargs)
        written.append(path)
        return path

    save(photos["astronaut"], folder / "photos" / "astronaut.jpg", quality=92)
    save(photos["coffee"], folder / "photos" / "coffee.png")
    save(photos["chelsea"], folder / "photos" / "chelsea.jpg", quality=85)
    save(photos["astronaut"], folder / "reshared" / "astronaut-forum.jpg", quality=50)
    half = photos["coffee"].resize((photos["coffee"].width // 2, photos["coffee"].height // 2), Image.Resampling.LANCZOS)
    save(half, folder / "reshared" / "coffee-small.jpg", quality=80)

    rocket = io.BytesIO()
    photos["rocket"].save(rocket, "JPEG", quality=88)
    archive = folder / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("upload/rocket.jpg", rocket.getvalue())
        zf.write(folder / "photos" / "chelsea.jpg", "upload/copy-of-chelsea.jpg")
    written.append(archive)

    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a cat on a sofa\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 451x300, Model: demo-model",
    )
    save(photos["chelsea"], folder / "generator-metadata.png", pnginfo=info)

    refused = folder / "refused"
    refused.mkdir(parents=True, exist_ok=True)
    (refused / "notes.jpg").write_text("not a picture, whatever its name says\n")
    with zipfile.ZipFile(refused / "escape.zip", "w") as zf:
        zf.writestr("../../outside.jpg", rocket.getvalue())
    written += [refused / "notes.jpg", refused / "escape.zip"]
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m vestige.cli.demo FOLDER")
    for path in prepare(Path(sys.argv[1])):
        print(path)
