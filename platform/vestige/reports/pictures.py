"""The pictures a rendered report shows: findings' pictures from the store, thumbnails of the evidence."""

from __future__ import annotations

import logging
import io
from typing import Any

from PIL import Image as PILImage

from vestige.core.errors import StoreError
from vestige.evidence.imageconvert import to_rgb
from vestige.evidence.imagefile import open_image
from vestige.evidence.store import BlobStore
from vestige.plugin.pixels import shown_form

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 360
#: Thumbnails are a reading aid, not evidence (the originals are in the bundle):
#: JPEG keeps a report of a thousand images at a size a browser opens.
THUMBNAIL_MEDIA_TYPE = "image/jpeg"


def thumbnail_jpeg(data: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    """A JPEG no larger than ``side`` pixels on its longer edge, in RGB."""
    picture = to_rgb(open_image(data, name="evidence", max_side=side))
    picture.thumbnail((side, side), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


class ReportPictures:
    """Bytes of every picture a report refers to, read (and verified) from the evidence store once.

    A blob that cannot be served is not fatal to the report: the renderer
    shows the sentence in :meth:`problem` where the picture would be.
    """

    def __init__(self, store: BlobStore, document: dict[str, Any]) -> None:
        self._pictures: dict[str, bytes] = {}
        self._thumbnails: dict[str, bytes] = {}
        self._problems: dict[str, str] = {}
        #: Blobs the store could not serve as written (missing, corrupted): a report must not list them as intact.
        self.store_problems: dict[str, str] = {}
        #: The media type each finding's picture is shown in (a deferred picture is rendered as PNG).
        self._shown_types: dict[str, str] = {}
        for image in document["images"]:
            self._load(store, image["sha256"], self._thumbnails, thumbnail_jpeg)
            for finding in image["findings"]:
                for picture in finding["pictures"]:
                    self._load(store, picture["sha256"], self._pictures, self._shown(picture["sha256"], picture["media_type"]))

    def _load(self, store: BlobStore, sha256: str, into: dict[str, bytes], convert: Any) -> None:
        if sha256 in into or sha256 in self._problems:
            return
        try:
            into[sha256] = convert(store.get(sha256))
        except StoreError as exc:
            self._problems[sha256] = self.store_problems[sha256] = str(exc)
        except Exception as exc:  # a picture that does not decode is shown as a sentence, not a crash
            log.warning("picture %s cannot be shown in the report", sha256, exc_info=True)
            self._problems[sha256] = f"picture {sha256[:12]}… cannot be shown: {exc}"

    def _shown(self, sha256: str, media_type: str) -> Any:
        def convert(data: bytes) -> bytes:
            shown, self._shown_types[sha256] = shown_form(data, media_type)
            return shown
        return convert

    def get(self, sha256: str) -> bytes | None:
        """A finding's picture as shown: as stored, or rendered as PNG when it is a deferred one."""
        return self._pictures.get(sha256)

    def media_type(self, sha256: str, stored: str) -> str:
        """The media type of :meth:`get`'s bytes for a picture stored as ``stored``."""
        return self._shown_types.get(sha256, stored)

    def thumbnail(self, sha256: str) -> bytes | None:
        """The thumbnail of the evidence image ``sha256`` (:data:`THUMBNAIL_MEDIA_TYPE`)."""
        return self._thumbnails.get(sha256)

    def problem(self, sha256: str) -> str | None:
        return self._problems.get(sha256)
