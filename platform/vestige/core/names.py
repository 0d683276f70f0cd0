"""Names from outside (file names, archive members, form fields), made safe to store and to show.

A name may carry a NUL byte (which PostgreSQL text refuses), terminal escape
sequences, or bidirectional overrides that make ``invoice\u202egpj.exe`` read
as ``invoiceexe.jpg``. :func:`safe_text` writes every control or format
character (Unicode categories Cc and Cf: C0/C1 controls, NUL, bidi controls,
zero-width characters) as a visible escape, ``\\x00`` or ``\\u202e``, as
Python's ``repr`` does, and bounds the length. The escaped text is what the
database holds and every page shows; the name's original bytes are kept
beside it in the acquisition record (:func:`original_bytes`).
"""

from __future__ import annotations

import os
import unicodedata

#: Longest name kept (the columns hold 1024 characters; escapes lengthen a name).
MAX_NAME_CHARS = 1000


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
        return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return ch


def safe_text(value: str, limit: int = MAX_NAME_CHARS) -> str:
    """``value`` with control and format characters escaped, at most ``limit`` characters."""
    text = "".join(_escape(ch) for ch in value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def original_bytes(value: str) -> bytes | None:
    """The name's own bytes when :func:`safe_text` changed it, else ``None`` (nothing more to keep)."""
    if safe_text(value) == value:
        return None
    return os.fsencode(value) if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in value) else value.encode("utf-8", "surrogatepass")
