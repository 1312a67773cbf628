"""A Python client of the MaskWatch HTTP API; the `maskwatch` CLI's API commands use it.

    from maskwatch.client import MaskWatchClient

    with MaskWatchClient("http://127.0.0.1:8000", key="mw_...") as api:
        job = api.submit("gate.mp4", camera="gate-1")
        job = api.wait(job["id"])
        print(api.report(camera="gate-1", bucket="minute"))

Without arguments, ``MaskWatchClient.from_settings()`` reads ``MASKWATCH_API_URL`` and
``MASKWATCH_API_KEY``. Every method returns the API's JSON as plain dicts and raises
``ApiError`` (status code and the server's reason) for any answer that is not a success.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import httpx

from maskwatch.settings import Settings, get_settings

FINISHED_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
CONNECT_TIMEOUT_S = 30.0
UPLOAD_TIMEOUT_S = 600.0  # the server probes an upload before it answers
PAGE_SIZE = 100  # the API's largest page of jobs


class ApiError(Exception):
    """The API answered with an error, or could not be reached (``status_code`` None)."""

    def __init__(self, status_code: int | None, reason: str, detail: Any) -> None:
        self.status_code = status_code
        self.reason = reason
        self.detail = detail
        super().__init__(f"{status_code} {reason}: {detail}" if status_code else reason)


class NoApiKey(ValueError):
    """Neither an explicit key nor MASKWATCH_API_KEY."""


def default_api_url(settings: Settings) -> str:
    """MASKWATCH_API_URL, else the address `maskwatch serve` listens on by the same settings."""
    if settings.api_url:
        return settings.api_url
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: reachable on the loopback
        host = "127.0.0.1"
    return f"http://{host}:{settings.api_port}"


def _segment(value: str) -> str:
    """An id quoted into exactly one path segment (``../x`` cannot climb the URL)."""
    return quote(value, safe="")


class ReportQuery(TypedDict, total=False):
    """The filters of a compliance report (``GET /v1/reports``); None means no filter."""

    site: str | None
    camera: str | None
    start: str | None  # inclusive, ISO 8601 with offset (the API's ``from``)
    end: str | None  # exclusive (the API's ``to``)
    bucket: str  # minute, hour (the default) or day


class MaskWatchClient:
    """One API base URL and key; a context manager that closes its connections."""

    def __init__(self, base_url: str, key: str) -> None:
        if not key:
            raise NoApiKey("no API key: pass --key or set MASKWATCH_API_KEY")
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=UPLOAD_TIMEOUT_S, write=UPLOAD_TIMEOUT_S),
        )

    @classmethod
    def from_settings(
        cls, base_url: str | None = None, key: str | None = None, settings: Settings | None = None
    ) -> MaskWatchClient:
        """A client for ``base_url`` and ``key``, each defaulting to the MASKWATCH_* setting."""
        settings = settings or get_settings()
        secret = key or (settings.api_key.get_secret_value() if settings.api_key else "")
        return cls(base_url or default_api_url(settings), secret)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MaskWatchClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------- transport

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(None, f"cannot reach {self.base_url}: {exc}", None) from exc
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = response.text[:200]
        raise ApiError(response.status_code, response.reason_phrase, detail)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    # ------------------------------------------------------------------------------ jobs

    def submit(
        self,
        file: str | Path,
        camera: str,
        *,
        site: str | None = None,
        recorded_at: str | None = None,
        detector: str | None = None,
    ) -> dict[str, Any]:
        """Upload a video or image for analysis; the queued job."""
        path = Path(file)
        form = {"camera": camera}
        optional = {"site": site, "recorded_at": recorded_at, "detector": detector}
        form.update({name: value for name, value in optional.items() if value is not None})
        with path.open("rb") as stream:
            job: dict[str, Any] = self._json(
                "POST",
                "/v1/jobs",
                data=form,
                files={"file": (path.name, stream, "application/octet-stream")},
            )
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json("GET", f"/v1/jobs/{_segment(job_id)}")
        return found

    def jobs(
        self,
        *,
        site: str | None = None,
        camera: str | None = None,
        status: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> dict[str, Any]:
        """One page of jobs, newest first: ``{"items": [...], "total": N}``."""
        params = {"site": site, "camera": camera, "status": status}
        query: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
        page: dict[str, Any] = self._json(
            "GET", "/v1/jobs", params=query | {"offset": offset, "limit": limit}
        )
        return page

    def iter_jobs(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every job matching the filters, newest first, page after page."""
        offset = 0
        while True:
            page = self.jobs(offset=offset, limit=PAGE_SIZE, **filters)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def cancel(self, job_id: str) -> dict[str, Any]:
        """``POST /v1/jobs/{id}/cancel``: stop a queued or running job, keeping what it
        stored; the cancelled job."""
        job: dict[str, Any] = self._json("POST", f"/v1/jobs/{_segment(job_id)}/cancel")
        return job

    def delete(self, job_id: str) -> None:
        """``DELETE /v1/jobs/{id}``: the job, its footage, its rows and what was rendered
        from it (a running job is cancelled first)."""
        self._send("DELETE", f"/v1/jobs/{_segment(job_id)}")

    def frames(self, job_id: str, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        page: dict[str, Any] = self._json(
            "GET", f"/v1/jobs/{_segment(job_id)}/frames", params={"offset": offset, "limit": limit}
        )
        return page

    def wait(
        self,
        job_id: str,
        *,
        poll_s: float = 2.0,
        timeout_s: float | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job succeeded, failed or was cancelled; the finished job.

        Raises:
            TimeoutError: ``timeout_s`` passed first.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in FINISHED_STATUSES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
            time.sleep(poll_s)

    # --------------------------------------------------------------------------- reports

    @staticmethod
    def _report_params(query: ReportQuery) -> dict[str, Any]:
        names = {"start": "from", "end": "to"}
        params = {names.get(k, k): v for k, v in query.items() if v is not None}
        return {"bucket": "hour", **params}

    def report(self, **query: Unpack[ReportQuery]) -> dict[str, Any]:
        """The compliance time series: ``{"bucket": ..., "items": [...]}``."""
        params = self._report_params(query)
        report: dict[str, Any] = self._json("GET", "/v1/reports", params=params)
        return report

    def report_csv(self, **query: Unpack[ReportQuery]) -> str:
        """The same series as the server's CSV."""
        params = self._report_params(query)
        return self._send(
            "GET", "/v1/reports", params=params, headers={"Accept": "text/csv"}
        ).text

    # ---------------------------------------------------------------------------- alerts

    def create_rule(self, **rule: Any) -> dict[str, Any]:
        """Add an alert rule (fields of POST /v1/alerts/rules); holds its secret, once."""
        body = {k: v for k, v in rule.items() if v is not None}
        created: dict[str, Any] = self._json("POST", "/v1/alerts/rules", json=body)
        return created

    def rules(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", "/v1/alerts/rules")["items"]
        return items

    def rule(self, rule_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self._json("GET", f"/v1/alerts/rules/{int(rule_id)}")
        return found

    def delete_rule(self, rule_id: int) -> None:
        self._send("DELETE", f"/v1/alerts/rules/{int(rule_id)}")

    def deliveries(
        self, *, rule_id: int | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Webhook deliveries newest first, each with its log of tries and status codes."""
        params: dict[str, Any] = {"limit": limit}
        if rule_id is not None:
            params["rule_id"] = rule_id
        if status is not None:
            params["status"] = status
        items: list[dict[str, Any]] = self._json(
            "GET", "/v1/alerts/deliveries", params=params
        )["items"]
        return items
