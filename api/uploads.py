"""Multipart uploads streamed to disk in chunks, under names we generate, bounded in size."""

from __future__ import annotations

import contextlib
import logging
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".flv",
        ".wmv",
        ".3gp",
        ".h264",
        ".hevc",
    }
)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
ALLOWED_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS
UNKNOWN_EXTENSION = ".bin"  # ffprobe looks at the bytes, not the name

MAX_DISPLAY_NAME_CHARS = 255
MAX_FIELD_BYTES = 1024  # a camera name, a site, a timestamp
MAX_PARTS = 16
FORM_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers and the small fields
_FLUSH_BYTES = 1024 * 1024  # file data is handed to a thread in blocks of about this size
# Control, format (e.g. U+202E right-to-left override), surrogate, line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class UploadError(Exception):
    """The upload was refused; ``status_code`` and ``detail`` go back to the client as is."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass
class Upload:
    """One received file and the form's text fields."""

    path: Path  # upload_dir / <uuid hex><allowed extension>: never the client's name
    display_name: str  # the client's file name, sanitised, for display only
    size: int  # bytes
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        """Delete the stored file (idempotent)."""
        self.path.unlink(missing_ok=True)


def multipart_body(
    file_description: str, required: tuple[str, ...] = ("file",), **fields: dict[str, Any]
) -> dict[str, Any]:
    """OpenAPI ``openapi_extra`` for a route whose multipart body is read here (streamed to
    disk), which FastAPI therefore cannot infer: the ``file`` part and the form ``fields``."""
    properties = {
        "file": {"type": "string", "format": "binary", "description": file_description},
        **fields,
    }
    schema = {
        "type": "object",
        "required": list(required),
        "additionalProperties": False,
        "properties": properties,
    }
    content = {"multipart/form-data": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


def too_large(max_bytes: int) -> str:
    return f"the file is larger than the limit of {max_bytes} bytes"


def display_name(client_name: str) -> str:
    """The client's file name made safe to show: base name only, nothing invisible.

    ``../../etc/passwd.mp4`` becomes ``passwd.mp4``; NUL, newlines, other control
    characters and invisible formatting (such as right-to-left overrides) are dropped; the
    result is at most 255 characters and never empty.
    """
    name = unicodedata.normalize("NFC", client_name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _INVISIBLE_CATEGORIES)
    name = PureWindowsPath(PurePosixPath(name).name).name.strip().lstrip(".")
    if len(name) > MAX_DISPLAY_NAME_CHARS:
        suffix = safe_extension(name)
        name = name[: MAX_DISPLAY_NAME_CHARS - len(suffix)] + suffix
    return name or "upload"


def safe_extension(name: str) -> str:
    """The name's extension in lower case if it is on the allow-list, else ``.bin``."""
    suffix = PurePosixPath(name).suffix.lower()
    return suffix if suffix in ALLOWED_EXTENSIONS else UNKNOWN_EXTENSION


class _FormReader:
    """python-multipart callbacks: text fields into a dict, the one file part onto disk."""

    def __init__(self, upload_dir: Path, max_bytes: int, file_field: str) -> None:
        self.upload_dir = upload_dir
        self.max_bytes = max_bytes
        self.file_field = file_field
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.display_name = ""
        self.size = 0
        self.pending: list[bytes] = []  # file data not yet written
        self.pending_bytes = 0
        self.file: IO[bytes] | None = None
        self._parts = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._part_name = ""
        self._part_is_file = False
        self._field_data = bytearray()
        self.complete = False  # the closing boundary was seen

    # -- python-multipart callbacks (synchronous, called from parser.write) --

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise UploadError(422, f"too many form parts (at most {MAX_PARTS})")
        self._disposition = b""
        self._field_data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise UploadError(400, "malformed multipart body: a part has no name")
        self._part_name = options[b"name"].decode("utf-8", "replace")
        self._part_is_file = b"filename" in options
        if not self._part_is_file:
            return
        if self._part_name != self.file_field:
            raise UploadError(422, f"unexpected file field {self._part_name!r}")
        if self.path is not None:
            raise UploadError(422, f"send exactly one file in field {self.file_field!r}")
        self.display_name = display_name(options[b"filename"].decode("utf-8", "replace"))
        self.path = self.upload_dir / f"{uuid.uuid4().hex}{safe_extension(self.display_name)}"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_is_file:
            self.size += end - start
            if self.size > self.max_bytes:
                raise UploadError(413, too_large(self.max_bytes))
            self.pending.append(data[start:end])
            self.pending_bytes += end - start
        else:
            self._field_data += data[start:end]
            if len(self._field_data) > MAX_FIELD_BYTES:
                raise UploadError(422, f"form field {self._part_name!r} is too long")

    def on_part_end(self) -> None:
        if self._part_is_file:
            return
        if self._part_name in self.fields:
            raise UploadError(422, f"form field {self._part_name!r} appears twice")
        try:
            self.fields[self._part_name] = self._field_data.decode("utf-8")
        except UnicodeDecodeError:
            raise UploadError(422, f"form field {self._part_name!r} is not UTF-8") from None

    def on_end(self) -> None:
        self.complete = True

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }

    # -- file writing, off the event loop --

    async def flush(self, force: bool = False) -> None:
        if (
            self.path is None
            or not self.pending
            or (self.pending_bytes < _FLUSH_BYTES and not force)
        ):
            return
        block, self.pending, self.pending_bytes = b"".join(self.pending), [], 0
        if self.file is None:
            # "xb": a generated name that somehow exists is an error, never an overwrite.
            self.file = await anyio.to_thread.run_sync(self.path.open, "xb")
        await anyio.to_thread.run_sync(self.file.write, block)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


async def receive_upload(
    request: Request, *, upload_dir: Path, max_bytes: int, file_field: str = "file"
) -> Upload:
    """Stream a multipart/form-data request body: the file to disk, text fields to memory.

    The file is written under ``upload_dir`` as ``<uuid><extension>`` and never under the
    client's name. Nothing is left on disk when this raises.

    Raises:
        UploadError: 413 past ``max_bytes``, 415 for a non-multipart body, 400 for a
            malformed one, 422 for a missing file or unexpected fields.
    """
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise UploadError(415, "send the file as multipart/form-data")
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "malformed multipart body: no boundary")
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isdigit()
        and int(declared) > max_bytes + FORM_OVERHEAD_BYTES
    ):
        raise UploadError(413, too_large(max_bytes))

    upload_dir.mkdir(parents=True, exist_ok=True)
    reader = _FormReader(upload_dir, max_bytes, file_field)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await reader.flush()
        parser.finalize()
        if not reader.complete:  # a body cut short must not pass for a shorter file
            raise UploadError(400, "malformed multipart body: it ends before its last boundary")
        await reader.flush(force=True)
        if reader.path is not None and reader.file is None:
            # An empty file: create it so that the caller sees what was sent (probe rejects it).
            reader.file = await anyio.to_thread.run_sync(reader.path.open, "xb")
    except MultipartParseError as exc:
        _abandon(reader)
        raise UploadError(400, "malformed multipart body") from exc
    except BaseException:  # incl. ClientDisconnect and cancellation: never leave a partial file
        _abandon(reader)
        raise
    reader.close()
    if reader.path is None:
        raise UploadError(422, f"no file in form field {file_field!r}")
    return Upload(reader.path, reader.display_name, reader.size, reader.fields)


def _abandon(reader: _FormReader) -> None:
    reader.close()
    if reader.path is not None:
        with contextlib.suppress(OSError):
            reader.path.unlink(missing_ok=True)
        logger.debug("discarded partial upload %s", reader.path.name)
