"""Prometheus metrics of the HTTP API: requests, latencies and status codes, at GET /metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

router = APIRouter(tags=["health"])

#: What a request that matched no route is labelled: raw paths would let any client
#: create unbounded label values (one time series per probed URL).
UNMATCHED = "<unmatched>"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ApiMetrics:
    """The API's request metrics, in a registry of their own.

    One registry per app (not the process-wide default) so that several apps in one process,
    as in the tests, each count their own requests.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "maskwatch_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "maskwatch_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (``/v1/jobs/{job_id}``), never its path.

    A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware: it leaves the
    request body stream alone, which the upload route reads itself.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500  # what the client gets if the app raises before answering

        async def send_and_record(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = _route_template(scope)
            method = str(scope.get("method", "GET"))
            self.metrics.requests.labels(method, route, str(status_code)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of the API's metrics; open like /healthz (no key).

    It names routes and status codes only: no site, camera, job or key appears in it.
    """
    api_metrics: ApiMetrics = request.app.state.metrics
    return Response(api_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
