"""Alerts: which rules a finished job sets off, and delivering their signed webhooks.

A job that ends (succeeded or failed) is evaluated once against the rules on its camera and
site; each rule that holds gets one delivery row (unique per rule and job, so evaluating
twice sends nothing twice), and each delivery is POSTed by a Celery task that retries with
backoff (worker/alert_tasks.py). Every try is logged with the receiver's status code.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from maskwatch.core.reports import ReportFilter
from storage.models import AlertDelivery, AlertKind, AlertRule, DeliveryStatus, Job, JobStatus
from storage.repositories import alerts as alert_repo
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from storage.repositories import tracks as track_repo

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-MaskWatch-Signature"
EVENT_HEADER = "X-MaskWatch-Event"
DELIVERY_HEADER = "X-MaskWatch-Delivery"
SECRET_PREFIX = "whsec_"
MAX_URL_CHARS = 2048
MAX_RETRY_WAIT_S = 3600.0
USER_AGENT = "MaskWatch-Webhook/1"
#: Answers worth another try: the receiver is busy, rate-limits us, or is failing right now.
RETRYABLE_STATUS = frozenset({408, 425, 429}) | frozenset(range(500, 600))

#: What compliance a rule counts: every face of every analysed frame, or people (tracks,
#: each labelled by what they wore longest, counted where they were first seen).
MEASURES = ("face_frames", "people")


class WebhookTargetError(ValueError):
    """The webhook URL is malformed, or points where rules may not send."""


class UnresolvableHost(WebhookTargetError):
    """The webhook's host name does not resolve (now: DNS may answer later)."""


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_webhook_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """The URL if rules may send to it; WebhookTargetError with the reason otherwise.

    http(s) only, no user:password part, and (unless ``allow_private``) no host that
    resolves to a loopback, private, link-local or otherwise internal address: a rule must
    not turn the workers into a way to call services inside their own network. Checked when
    a rule is made and again before each delivery, since DNS answers change.
    """
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise WebhookTargetError(f"the URL is longer than {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetError("the URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise WebhookTargetError("the URL must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookTargetError("the URL's port is not a number from 1 to 65535") from None
    if allow_private or not resolve:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnresolvableHost(f"{parts.hostname} does not resolve: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise WebhookTargetError(
                f"{parts.hostname} resolves to {address}, an internal address; webhooks go "
                "to public addresses only (MASKWATCH_ALERT_PRIVATE_TARGETS allows others)"
            )
    return url


# ------------------------------------------------------------------------------ evaluation


def evaluate_job(session: Session, job_id: str) -> list[int]:
    """Add a delivery for each rule the ended job sets off; ids of those still to send.

    The caller commits, then sends the returned ids to ``deliver`` (pending deliveries made
    by an earlier evaluation that died before sending are included).
    """
    job = job_repo.get_job(session, job_id)
    if job is None or job.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        return []
    for rule in alert_repo.rules_for_camera(session, job.camera.site, job.camera.name):
        window = _fired(session, rule, job)
        if window is False:
            continue
        delivery, created = alert_repo.add_delivery(session, rule, job.id, rule.kind.value)
        if created:
            alert_repo.set_payload(delivery, payload(delivery, rule, job, session, window))
            logger.info("job %s set off alert rule %d (%s)", job.id, rule.id, rule.kind.value)
    session.flush()
    return alert_repo.pending_deliveries(session, job.id)


def _fired(
    session: Session, rule: AlertRule, job: Job
) -> alert_repo.WindowTotals | None | bool:
    """False when the rule does not fire; the compliance window (or None) when it does."""
    if rule.kind is AlertKind.JOB_FAILED:
        return None if job.status is JobStatus.FAILED else False
    if rule.kind is AlertKind.JOB_FINISHED:
        return None if job.status is JobStatus.SUCCEEDED else False
    if job.status is not JobStatus.SUCCEEDED or rule.threshold is None or not rule.window_s:
        return False
    end = alert_repo.last_capture(session, job.id)
    if end is None:
        return False
    totals = (
        alert_repo.people_window_totals if rule.measure == "people" else alert_repo.window_totals
    )
    window = totals(
        session,
        ReportFilter(
            site=rule.site,
            camera=rule.camera,
            start=end - timedelta(seconds=rule.window_s),
            end=end,
            end_inclusive=True,
        ),
    )
    ratio = window.compliance_ratio
    # min_faces is the least the window must count: faces, or people for a people rule.
    if window.counted < rule.min_faces or ratio is None or ratio >= rule.threshold:
        return False
    return window


def payload(
    delivery: AlertDelivery,
    rule: AlertRule,
    job: Job,
    session: Session,
    window: alert_repo.WindowTotals | None | bool,
) -> dict[str, Any]:
    """The webhook's JSON body: the event, the rule, the job and, for compliance, the window."""
    summary = report_repo.job_summary(session, job.id)
    body: dict[str, Any] = {
        "event": rule.kind.value,
        "delivery_id": delivery.id,
        "created_at": _iso(delivery.created_at),
        "rule": rule_dict(rule),
        "job": {
            "id": job.id,
            "site": job.camera.site,
            "camera": job.camera.name,
            "status": job.status.value,
            "error": job.error,
            "input_name": job.input_name,
            "recorded_at": _iso(job.recorded_at),
            "finished_at": None if job.finished_at is None else _iso(job.finished_at),
            "frames": summary.frames,
            "faces": summary.faces,
            "masked": summary.masked,
            "unmasked": summary.unmasked,
            "incorrect": summary.incorrect,
            "compliance_ratio": summary.compliance_ratio,
            "people": track_repo.people_summary(session, job.id).to_dict(),
        },
    }
    if isinstance(window, alert_repo.WindowTotals):
        body["window"] = {
            "start": _iso(window.start),
            "end": _iso(window.end),
            "measure": window.measure,
            ("people" if window.measure == "people" else "faces"): window.counted,
            "masked": window.masked,
            "compliance_ratio": window.compliance_ratio,
        }
    return body


def rule_dict(rule: AlertRule) -> dict[str, Any]:
    """A rule as webhooks, the API and the CLI show it; never its secret."""
    return {
        "id": rule.id,
        "site": rule.site,
        "camera": rule.camera,
        "kind": rule.kind.value,
        "threshold_percent": None if rule.threshold is None else round(rule.threshold * 100, 4),
        "window_s": rule.window_s,
        "min_faces": rule.min_faces,
        "measure": rule.measure,
        "url": rule.url,
        "enabled": rule.enabled,
        "created_at": _iso(rule.created_at),
    }


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


# -------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Attempted:
    """What one delivery try came to; ``retry_in_s`` is set when another try should follow."""

    status: DeliveryStatus
    status_code: int | None
    error: str | None
    retry_in_s: float | None = None


def retry_wait_s(attempts: int, base_s: float) -> float:
    """Backoff before the next try after ``attempts`` tries: base, 2x base, 4x base, ..."""
    return float(min(base_s * 2 ** (attempts - 1), MAX_RETRY_WAIT_S))


def deliver(
    session: Session,
    delivery_id: int,
    *,
    max_attempts: int,
    retry_base_s: float,
    timeout_s: float,
    allow_private: bool,
) -> Attempted | None:
    """POST one pending delivery and log the try (the caller commits); None if not pending.

    2xx delivers; a network error, 408, 425, 429 or 5xx is tried again after a backoff
    until ``max_attempts``; any other answer (a redirect, another 4xx) fails at once, since
    the receiver refused this message and would refuse it again.
    """
    import httpx

    delivery = alert_repo.get_delivery(session, delivery_id)
    if delivery is None or delivery.status is not DeliveryStatus.PENDING:
        return None
    rule = delivery.rule
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.id),
        SIGNATURE_HEADER: sign(rule.secret, body),
    }
    status_code: int | None = None
    error: str | None = None
    refused_target = False
    started = time.perf_counter()
    try:
        check_webhook_url(rule.url, allow_private=allow_private)
        response = httpx.post(
            rule.url, content=body, headers=headers, timeout=timeout_s, follow_redirects=False
        )
        status_code = response.status_code
        if not response.is_success:
            error = f"HTTP {status_code}: {response.text[:200]}"
    except WebhookTargetError as exc:
        error = str(exc)
        refused_target = not isinstance(exc, UnresolvableHost)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    duration_ms = round((time.perf_counter() - started) * 1000)

    attempts_after = delivery.attempts + 1
    retryable = status_code is None or status_code in RETRYABLE_STATUS
    if status_code is not None and 200 <= status_code < 300:
        outcome, retry_in = DeliveryStatus.DELIVERED, None
    elif retryable and attempts_after < max_attempts and not refused_target:
        outcome, retry_in = DeliveryStatus.PENDING, retry_wait_s(attempts_after, retry_base_s)
    else:
        outcome, retry_in = DeliveryStatus.FAILED, None
    alert_repo.record_attempt(
        session,
        delivery,
        status_code=status_code,
        error=error,
        duration_ms=duration_ms,
        outcome=outcome,
    )
    logger.info(
        "alert delivery %d to rule %d: try %d, %s -> %s",
        delivery.id,
        rule.id,
        delivery.attempts,
        status_code if status_code is not None else error,
        outcome.value,
    )
    return Attempted(outcome, status_code, error, retry_in)

