"""The pictures a rendered report shows: findings' pictures from the store, thumbnails of the evidence."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image as PILImage

from vestige.errors import StoreError
from vestige.imageconvert import to_rgb
from vestige.imagefile import open_image
from vestige.store import BlobStore

THUMBNAIL_SIDE = 360


def thumbnail_png(data: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    """A PNG no larger than ``side`` pixels on its longer edge, in RGB."""
    picture = to_rgb(open_image(data, name="evidence"))
    picture.thumbnail((side, side), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=True)
    return out.getvalue()


class ReportPictures:
    """Bytes of every picture a report refers to, read (and verified) from the evidence store once.

    A blob that cannot be served is not fatal to the report: the renderer
    shows the sentence in :meth:`problem` where the picture would be.
    """

    def __init__(self, store: BlobStore, document: dict[str, Any]) -> None:
        self._data: dict[str, bytes] = {}
        self._problems: dict[str, str] = {}
        for image in document["images"]:
            self._load(store, image["sha256"], thumbnail=True)
            for finding in image["findings"]:
                for picture in finding["pictures"]:
                    self._load(store, picture["sha256"], thumbnail=False)

    def _load(self, store: BlobStore, sha256: str, *, thumbnail: bool) -> None:
        if sha256 in self._data or sha256 in self._problems:
            return
        try:
            data = store.get(sha256)
            self._data[sha256] = thumbnail_png(data) if thumbnail else data
        except StoreError as exc:
            self._problems[sha256] = str(exc)
        except Exception as exc:  # a picture that does not decode is shown as a sentence, not a crash
            self._problems[sha256] = f"picture {sha256[:12]}… cannot be shown: {exc}"

    def get(self, sha256: str) -> bytes | None:
        return self._data.get(sha256)

    def problem(self, sha256: str) -> str | None:
        return self._problems.get(sha256)
