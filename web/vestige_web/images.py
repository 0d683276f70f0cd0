"""Images: the image page, and the image's bytes served from the verified evidence store.

Bytes always come from :meth:`BlobStore.get`, which checks the SHA-256 on
every read: a corrupted blob is an error page, never a wrong picture. Files
are never read from a path the request names.
"""

from __future__ import annotations

import io
from functools import lru_cache

from flask import Blueprint, Response, abort, g, render_template

from vestige.evidence.imageconvert import to_rgb
from vestige.evidence.imagefile import open_image
from vestige.plugin.pixels import shown_form
from vestige_web.access import find_image
from vestige_web.auth import require_login
from vestige_web.custody import record_view
from vestige_web.evidence import image_details, picture_of
from vestige_web.extensions import vestige

bp = Blueprint("images", __name__)
bp.before_request(require_login)

#: Formats every browser shows as they are; others are shown as a PNG rendering.
BROWSER_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"}
THUMBNAIL_SIDE = 320


def evidence_response(data: bytes, media_type: str, *, filename: str | None = None) -> Response:
    """Bytes of evidence, never sniffed or run by the browser, cached only privately."""
    response = Response(data, mimetype=media_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=3600"
    if filename is not None:
        response.headers.set("Content-Disposition", "attachment", filename=filename)
    return response


def _render(sha256: str, side: int | None) -> bytes:
    """The verified blob decoded and encoded for a browser: a JPEG thumbnail, or a PNG when ``side`` is None."""
    image = to_rgb(open_image(vestige.workspace.store.get(sha256), name=sha256[:12], max_side=side))
    buf = io.BytesIO()
    if side is None:
        image.save(buf, "PNG")
    else:
        image = image.copy()
        image.thumbnail((side, side))
        image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


@lru_cache(maxsize=2048)
def _thumbnail(sha256: str) -> bytes:
    # Keyed by content hash: the same bytes always give the same thumbnail.
    return _render(sha256, THUMBNAIL_SIDE)


@bp.get("/images/<int:image_id>")
def show(image_id: int) -> str:
    image = find_image(vestige.session, g.user, image_id)
    record_view(image.case, "image.viewed", {"image_id": image.id, "sha256": image.blob_sha256})
    record = image_details(vestige.session, g.user, image, vestige.pm)
    return render_template("image.html", image=image, case=image.case, record=record)


@bp.get("/images/<int:image_id>/file")
def file(image_id: int) -> Response:
    """The image for display on its page (the page view is the custody event)."""
    image = find_image(vestige.session, g.user, image_id)
    if image.media_type in BROWSER_TYPES:
        return evidence_response(vestige.workspace.store.get(image.blob_sha256), image.media_type)
    return evidence_response(_render(image.blob_sha256, None), "image/png")


@bp.get("/images/<int:image_id>/thumbnail")
def thumbnail(image_id: int) -> Response:
    image = find_image(vestige.session, g.user, image_id)
    return evidence_response(_thumbnail(image.blob_sha256), "image/jpeg")


@bp.get("/images/<int:image_id>/download")
def download(image_id: int) -> Response:
    """The original bytes as acquired, as an attachment; an export in the custody log."""
    image = find_image(vestige.session, g.user, image_id)
    data = vestige.workspace.store.get(image.blob_sha256)
    record_view(image.case, "image.exported", {"image_id": image.id, "sha256": image.blob_sha256})
    return evidence_response(data, image.media_type, filename=image.original_filename.rsplit("/", 1)[-1])


@bp.get("/images/<int:image_id>/pictures/<sha256>")
def picture(image_id: int, sha256: str) -> Response:
    """A picture a detector made for this image (fingerprint, residual, spectrum)."""
    image = find_image(vestige.session, g.user, image_id)
    found = picture_of(vestige.session, image, sha256)
    if found is None:
        abort(404, "This image has no such picture.")
    data, media_type = shown_form(vestige.workspace.store.get(sha256), found.get("media_type", "image/png"))
    return evidence_response(data, media_type if media_type in BROWSER_TYPES else "application/octet-stream")
