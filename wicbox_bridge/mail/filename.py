"""Attachment file names that are safe to store and to save on Windows or Linux."""

from __future__ import annotations

import re
import unicodedata

MAX_FILENAME_LENGTH = 150
MAX_EXTENSION_LENGTH = 16

_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*]')
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"com{n}" for n in "123456789¹²³"}
    | {f"lpt{n}" for n in "123456789¹²³"}
)
_EXTENSIONS = {
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
    "text/rfc822-headers": ".txt",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/msword": ".doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.ms-outlook": ".msg",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "image/svg+xml": ".svg",
}


def extension_for(content_type: str) -> str:
    """A file extension for a ``type/subtype`` (".bin" when none is known)."""
    return _EXTENSIONS.get(content_type, ".bin")


def fallback_filename(index: int, content_type: str) -> str:
    """``attachment-N.ext`` for a part that names no file."""
    return f"attachment-{index}{extension_for(content_type)}"


def sanitise_filename(name: str | None, index: int, content_type: str) -> str:
    """Make ``name`` safe: last path component only, no control or reserved characters, no
    reserved Windows device names, no trailing dots or spaces, at most MAX_FILENAME_LENGTH
    characters with the extension kept; an empty result becomes ``attachment-N.ext``.
    """
    if not name:
        return fallback_filename(index, content_type)
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name)
    name = "".join(char for char in name if unicodedata.category(char) not in {"Cf", "Cs", "Co", "Cn"})
    name = name.strip().rstrip(". ").lstrip(". ")
    if not name or set(name) <= {"_", ".", " "}:
        return fallback_filename(index, content_type)
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    if stem.split(".")[0].strip().lower() in _RESERVED:
        stem = f"_{stem}"
    return _bounded(stem, f".{extension}" if dot else "")


def _bounded(stem: str, extension: str) -> str:
    if len(extension) > MAX_EXTENSION_LENGTH:
        stem, extension = stem + extension, ""
    room = MAX_FILENAME_LENGTH - len(extension)
    stem = stem[:room].rstrip(". ")
    return f"{stem or 'attachment'}{extension}"
