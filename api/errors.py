"""Error answers: the documented error bodies, and what bad media becomes for the client."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status

from api.schemas import ErrorOut
from api.uploads import Upload
from worker.pipeline.errors import DecodeError, InputError, UnsupportedMediaError


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these status codes, each with a ``{"detail": ...}`` body."""
    return {code: {"model": ErrorOut} for code in codes}


def media_error(exc: InputError | TimeoutError, upload: Upload) -> HTTPException:
    """415 for what is not media we analyse, 422 for media we cannot use.

    The pipeline names files by their base name; ours is a generated one, so the client's
    own (sanitised) file name is put back in its place.
    """
    if isinstance(exc, TimeoutError):
        detail = f"{upload.display_name}: could not be read in time"
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)
    detail = str(exc).replace(upload.path.name, upload.display_name)
    if isinstance(exc, DecodeError | UnsupportedMediaError):
        return HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail=detail)
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)
