"""/v1/classify: one image in, its faces with mask verdicts out, synchronously."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from api.auth import CallerDep
from api.deps import Services, services
from api.errors import documented, media_error
from api.schemas import ClassifyOut, FaceOut
from api.uploads import Upload, UploadError, multipart_body, receive_upload
from maskwatch.runtime import SetupError, analysis_settings
from worker.pipeline.errors import InputError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/classify", tags=["classify"])

CLASSIFY_BODY = multipart_body("one image (JPEG, PNG, ...)")


def classify_upload(svc: Services, upload: Upload) -> ClassifyOut:
    """Run the detector and classifier on the stored image (in a worker thread)."""
    from worker.images import classify_image, face_json  # torch: the first request loads it

    if upload.fields:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"unknown form field(s): {', '.join(sorted(upload.fields))}",
        )
    try:
        models = svc.models.get()
    except SetupError as exc:  # the reason names server paths: log it, do not send it
        logger.error("cannot classify: %s", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="the classifier is not available"
        ) from exc
    try:
        with svc.models.inference_lock:
            result = classify_image(upload.path, models, analysis_settings(svc.settings))
    except (InputError, TimeoutError) as exc:
        raise media_error(exc, upload) from exc
    return ClassifyOut(faces=[FaceOut.model_validate(f) for f in face_json(result.record)])


@router.post(
    "",
    response_model=ClassifyOut,
    openapi_extra=CLASSIFY_BODY,
    responses=documented(400, 401, 413, 415, 422, 503),
)
async def classify(request: Request, caller: CallerDep) -> ClassifyOut:
    """Find every face in one image and say whether it wears a mask (nothing is stored)."""
    svc = services(request)
    try:
        upload = await receive_upload(
            request,
            upload_dir=svc.settings.upload_dir / "classify",
            max_bytes=svc.settings.max_classify_bytes,
        )
    except UploadError as exc:
        raise HTTPException(exc.status_code, detail=exc.detail) from exc
    try:
        return await run_in_threadpool(classify_upload, svc, upload)
    finally:
        upload.discard()
