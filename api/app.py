"""The FastAPI application factory: settings in, a ready app out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

import maskwatch
from api.deps import CancelJob, Enqueue, LazyModels, Services
from api.metrics import ApiMetrics, MetricsMiddleware
from api.metrics import router as metrics_router
from api.routes import alerts, classify, evidence, health, jobs, reports, ui
from maskwatch.settings import Settings, get_settings
from storage.db import make_engine, make_session_factory

if TYPE_CHECKING:
    from storage.models import Job
    from worker.pipeline.analyze import Models

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_S = 5  # a lost database is usually back within seconds (a restart)
ROUTERS = (
    health.router, jobs.router, reports.router, classify.router, alerts.router, evidence.router
)
# Every route as declared (paths with their prefixes): what a path's methods are read from.
DECLARED_ROUTES = tuple(
    route for router in (*ROUTERS, ui.router, metrics_router) for route in router.routes
)


def default_enqueue(job_id: str) -> None:
    """Send the job to the Celery workers (imported on first use, so tests need no broker)."""
    from worker.dispatch import enqueue_job

    enqueue_job(job_id)


def default_cancel(session: Session, job: Job) -> None:
    """Cancel the job and its unfinished segments; workers stop at their next batch."""
    from worker.dispatch import cancel_job

    cancel_job(session, job)


def _load_models(settings: Settings) -> Callable[[], Models]:
    def load() -> Models:
        from maskwatch.runtime import analysis_settings, models_for

        return models_for(settings, analysis_settings(settings))

    return load


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    enqueue: Enqueue | None = None,
    cancel: CancelJob | None = None,
    models: LazyModels | None = None,
) -> FastAPI:
    """Build the API.

    Args:
        settings: defaults to the process-wide settings (MASKWATCH_* variables).
        session_factory: sessions on ``settings.database_url`` unless given (tests pass one
            bound to a connection they roll back).
        enqueue: hands committed job ids to the workers; ``worker.dispatch`` by default.
        cancel: cancels a job in the database; ``worker.dispatch.cancel_job`` by default.
        models: the lazily loaded classifier models for /v1/classify.
    """
    settings = settings or get_settings()
    engine = None
    if session_factory is None:
        engine = make_engine(settings.database_url)
        session_factory = make_session_factory(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if engine is not None:
            engine.dispose()

    app = FastAPI(
        title="MaskWatch",
        version=maskwatch.__version__,
        summary="Face-mask compliance analytics for CCTV footage.",
        lifespan=lifespan,
    )
    app.state.services = Services(
        settings=settings,
        session_factory=session_factory,
        enqueue=enqueue or default_enqueue,
        cancel=cancel or default_cancel,
        models=models or LazyModels(_load_models(settings)),
    )
    for router in ROUTERS:
        app.include_router(router)
    ui.install(app)
    app.state.metrics = ApiMetrics()
    app.include_router(metrics_router)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_exception_handler(Exception, _internal_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return app


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (a path can have several
    routes: GET and DELETE /v1/jobs/{job_id} are two)."""
    methods: set[str] = set()
    for route in DECLARED_ROUTES:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer, with a 405's Allow header listing all of the path's methods
    (Starlette names only those of the first route whose path matched)."""
    assert isinstance(exc, StarletteHTTPException)
    response = await http_exception_handler(request, exc)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Unexpected errors: logged with their traceback, answered without internals. A
    database that cannot be reached is a 503 with Retry-After: the client should try again."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated or isinstance(
        exc, OperationalError
    ):
        logger.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": "the database is unavailable; try again"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "internal server error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )
