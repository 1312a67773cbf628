"""Alert rules, their webhook deliveries and attempts, and the compliance a rule watches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maskwatch.core.counts import compliance_ratio
from maskwatch.core.labels import Label
from maskwatch.core.reports import ReportFilter
from storage.models import (
    AlertAttempt,
    AlertDelivery,
    AlertRule,
    DeliveryStatus,
    FrameStat,
    Track,
    utcnow,
)
from storage.repositories import reports as report_repo

MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """What a compliance rule counts in [start, end]: ``counted`` faces (face-frames) or
    people, ``masked`` of them masked, per the rule's ``measure``."""

    start: datetime
    end: datetime
    measure: str
    counted: int
    masked: int

    @property
    def compliance_ratio(self) -> float | None:
        return compliance_ratio(self.masked, self.counted)


def add_rule(session: Session, rule: AlertRule) -> AlertRule:
    """Store a new rule (enabled, created now unless set); flushed, so it has its id."""
    session.add(rule)
    session.flush()
    return rule


def get_rule(session: Session, rule_id: int) -> AlertRule | None:
    return session.get(AlertRule, rule_id)


def list_rules(session: Session, site: str | None = None) -> list[AlertRule]:
    """Rules oldest first; only ``site``'s when given."""
    query = select(AlertRule).order_by(AlertRule.id)
    if site is not None:
        query = query.where(AlertRule.site == site)
    return list(session.scalars(query))


def delete_rule(session: Session, rule: AlertRule) -> None:
    """Delete the rule and, with it, its delivery log."""
    session.delete(rule)
    session.flush()


def rules_for_camera(session: Session, site: str, camera: str) -> list[AlertRule]:
    """Enabled rules on this camera, or on every camera of its site."""
    return list(
        session.scalars(
            select(AlertRule)
            .where(
                AlertRule.enabled.is_(True),
                AlertRule.site == site,
                or_(AlertRule.camera.is_(None), AlertRule.camera == camera),
            )
            .order_by(AlertRule.id)
        )
    )


def last_capture(session: Session, job_id: str) -> datetime | None:
    """When the job's last analysed frame was captured."""
    return session.scalar(select(func.max(FrameStat.captured_at)).where(FrameStat.job_id == job_id))


def window_totals(session: Session, window: ReportFilter) -> WindowTotals:
    """Faces and masked faces of the frames ``window`` counts (an alert's: end included)."""
    query = select(
        func.coalesce(func.sum(FrameStat.faces), 0),
        func.coalesce(func.sum(FrameStat.masked), 0),
    )
    query = report_repo.of_succeeded_jobs(query, FrameStat.job_id, FrameStat.captured_at, window)
    faces, masked = session.execute(query).one()
    return _totals(window, "face_frames", faces, masked)


def people_window_totals(session: Session, window: ReportFilter) -> WindowTotals:
    """People (tracks) ``window`` counts, by when they were first seen, and how many of them
    were masked (by their longest-held label), as in the reports' people columns."""
    query = select(
        func.count(Track.id),
        func.coalesce(func.sum(case((Track.label == Label.WITH_MASK.value, 1), else_=0)), 0),
    )
    query = report_repo.of_succeeded_jobs(query, Track.job_id, Track.first_seen_at, window)
    people, masked = session.execute(query).one()
    return _totals(window, "people", people, masked)


def _totals(window: ReportFilter, measure: str, counted: int, masked: int) -> WindowTotals:
    if window.start is None or window.end is None:
        raise ValueError("an alert window needs a start and an end")
    return WindowTotals(window.start, window.end, measure, int(counted), int(masked))


def add_delivery(
    session: Session, rule: AlertRule, job_id: str, event: str
) -> tuple[AlertDelivery, bool]:
    """The rule's delivery for this job, created (pending, empty payload) if missing.

    Returns the delivery and whether this call created it. Safe against a concurrent
    evaluation of the same job: the insert runs in a savepoint and the loser reads the row.
    """
    existing = _delivery_of(session, rule.id, job_id)
    if existing is not None:
        return existing, False
    now = utcnow()
    delivery = AlertDelivery(
        rule=rule,
        job_id=job_id,
        event=event,
        payload={},
        status=DeliveryStatus.PENDING,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(delivery)
    except IntegrityError:
        found = _delivery_of(session, rule.id, job_id)
        if found is None:
            raise
        return found, False
    return delivery, True


def _delivery_of(session: Session, rule_id: int, job_id: str) -> AlertDelivery | None:
    return session.scalars(
        select(AlertDelivery).where(
            AlertDelivery.rule_id == rule_id, AlertDelivery.job_id == job_id
        )
    ).first()


def get_delivery(session: Session, delivery_id: int) -> AlertDelivery | None:
    return session.get(AlertDelivery, delivery_id)


def pending_deliveries(session: Session, job_id: str) -> list[int]:
    """Ids of the job's deliveries still to be made."""
    return list(
        session.scalars(
            select(AlertDelivery.id)
            .where(AlertDelivery.job_id == job_id, AlertDelivery.status == DeliveryStatus.PENDING)
            .order_by(AlertDelivery.id)
        )
    )


def record_attempt(
    session: Session,
    delivery: AlertDelivery,
    *,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    outcome: DeliveryStatus,
) -> AlertAttempt:
    """Log one try and move the delivery to ``outcome`` (pending: another try follows)."""
    now = utcnow()
    delivery.attempts += 1
    attempt = AlertAttempt(
        delivery_id=delivery.id,
        attempt=delivery.attempts,
        status_code=status_code,
        error=None if error is None else error[:MAX_ERROR_CHARS],
        duration_ms=duration_ms,
        attempted_at=now,
    )
    session.add(attempt)
    delivery.status = outcome
    delivery.last_status_code = status_code
    delivery.last_error = attempt.error
    delivery.updated_at = now
    if outcome is DeliveryStatus.DELIVERED:
        delivery.delivered_at = now
    session.flush()
    return attempt


def list_deliveries(
    session: Session,
    *,
    site: str | None = None,
    rule_id: int | None = None,
    status: DeliveryStatus | None = None,
    limit: int = 50,
) -> list[AlertDelivery]:
    """Deliveries newest first, filtered by their rule's site, the rule, or their status."""
    query = select(AlertDelivery).join(AlertDelivery.rule).order_by(AlertDelivery.id.desc())
    if site is not None:
        query = query.where(AlertRule.site == site)
    if rule_id is not None:
        query = query.where(AlertDelivery.rule_id == rule_id)
    if status is not None:
        query = query.where(AlertDelivery.status == status)
    return list(session.scalars(query.limit(limit)).unique())


def attempts_of(session: Session, delivery_ids: Sequence[int]) -> dict[int, list[AlertAttempt]]:
    """Each delivery's attempts, oldest first."""
    found: dict[int, list[AlertAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    if not delivery_ids:
        return found
    rows = session.scalars(
        select(AlertAttempt)
        .where(AlertAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(AlertAttempt.delivery_id, AlertAttempt.attempt)
    )
    for attempt in rows:
        found[attempt.delivery_id].append(attempt)
    return found


def set_payload(delivery: AlertDelivery, payload: dict[str, Any]) -> None:
    delivery.payload = payload
