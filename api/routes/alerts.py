"""/v1/alerts: alert rules on a site or camera, and the log of their webhook deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator
from sqlalchemy.orm import Session

from api.auth import Caller, CallerDep
from api.deps import SessionDep, services
from api.errors import documented
from api.params import MAX_NAME_CHARS, NAME_PATTERN
from api.schemas import UTCDateTime
from storage.models import AlertAttempt, AlertDelivery, AlertKind, AlertRule, DeliveryStatus
from storage.repositories import alerts as alert_repo
from worker import alerts

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

RULE_NOT_FOUND = "alert rule not found"
MAX_WINDOW_MINUTES = 7 * 24 * 60
MAX_DELIVERIES_PAGE = 200
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)]
MAX_ID = 2**31 - 1  # alert_rules.id is an INTEGER
RuleId = Annotated[int, Path(ge=1, le=MAX_ID)]


class RuleIn(BaseModel):
    """A new rule. ``compliance_below`` needs ``threshold_percent`` and ``window_minutes``."""

    model_config = ConfigDict(extra="forbid")

    kind: AlertKind
    url: HttpUrl = Field(description="the webhook: an http(s) URL that takes a JSON POST")
    site: Name | None = Field(None, description="required unless the key is limited to a site")
    camera: Name | None = Field(None, description="one camera; none: every camera of the site")
    threshold_percent: float | None = Field(
        None, gt=0, le=100, description="compliance_below: fire when compliance (masked / "
        "faces, or masked / people for measure people) over the window is below this"
    )
    window_minutes: float | None = Field(
        None, gt=0, le=MAX_WINDOW_MINUTES,
        description="compliance_below: the footage time looked at, ending at the last frame "
        "of the job that just finished",
    )
    min_faces: int = Field(
        1, ge=1, le=1_000_000,
        description="fewer faces (people, for measure people) in the window say too little",
    )
    measure: str = Field(
        "face_frames", description="what compliance counts: face_frames (every face in every "
        "analysed frame) or people (each track once, labelled by what they wore longest, in "
        "the window if first seen there)"
    )

    @field_validator("measure")
    @classmethod
    def _known_measure(cls, value: str) -> str:
        if value not in alerts.MEASURES:
            raise ValueError(f"measure must be one of: {', '.join(alerts.MEASURES)}")
        return value

    @field_validator("site", "camera")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return None if value is None else value.strip() or None

    @model_validator(mode="after")
    def _compliance_fields(self) -> RuleIn:
        wants_window = self.kind is AlertKind.COMPLIANCE_BELOW
        given = self.threshold_percent is not None, self.window_minutes is not None
        if wants_window and not all(given):
            raise ValueError("compliance_below needs threshold_percent and window_minutes")
        if not wants_window and any(given):
            raise ValueError(f"{self.kind.value} takes no threshold_percent or window_minutes")
        if not wants_window and self.measure != "face_frames":
            raise ValueError(f"{self.kind.value} takes no measure")
        return self


class RuleOut(BaseModel):
    id: int
    site: str
    camera: str | None
    kind: AlertKind
    threshold_percent: float | None
    window_s: int | None
    min_faces: int
    measure: str
    url: str
    enabled: bool
    created_at: str

    @classmethod
    def of(cls, rule: AlertRule) -> RuleOut:
        return cls.model_validate(alerts.rule_dict(rule))


class CreatedRuleOut(RuleOut):
    secret: str = Field(
        description="signs every delivery: X-MaskWatch-Signature is 'sha256=' and the hex "
        "HMAC-SHA256 of the raw body under it. Shown only now."
    )


class RuleList(BaseModel):
    items: list[RuleOut]


class AttemptOut(BaseModel):
    attempt: int
    status_code: int | None = Field(description="the receiver's answer; null: none came")
    error: str | None
    duration_ms: int
    attempted_at: UTCDateTime


class DeliveryOut(BaseModel):
    id: int
    rule_id: int
    job_id: str | None
    event: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: UTCDateTime
    delivered_at: UTCDateTime | None
    log: list[AttemptOut]

    @classmethod
    def of(cls, delivery: AlertDelivery, attempts: Sequence[AlertAttempt]) -> DeliveryOut:
        """The delivery's columns under the same names, with its tries as ``log``."""
        columns = {name: getattr(delivery, name) for name in cls.model_fields if name != "log"}
        log = [AttemptOut.model_validate(a, from_attributes=True) for a in attempts]
        return cls(**columns, log=log)


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


def _site_for(caller: Caller, site: str | None) -> str:
    if caller.site is not None:
        if site is not None and site != caller.site:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"this key may only manage site {caller.site!r}"
            )
        return caller.site
    if site is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="'site' is required for a key not limited to one site",
        )
    return site


def _visible_rule(session: Session, caller: Caller, rule_id: int) -> AlertRule:
    rule = alert_repo.get_rule(session, rule_id)
    if rule is None or not caller.may_see(rule.site):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=RULE_NOT_FOUND)
    return rule


@router.post(
    "/rules",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedRuleOut,
    responses=documented(401, 403, 422),
)
async def create_rule(
    body: RuleIn, request: Request, caller: CallerDep, session: SessionDep
) -> CreatedRuleOut:
    """Add a rule; the answer holds the webhook's signing secret, shown this once."""
    site = _site_for(caller, body.site)
    allow_private = services(request).settings.alert_private_targets
    try:  # resolves the host: off the event loop
        url = await run_in_threadpool(
            alerts.check_webhook_url, str(body.url), allow_private=allow_private
        )
    except alerts.WebhookTargetError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"url: {exc}") from None
    secret = alerts.new_secret()
    rule = alert_repo.add_rule(
        session,
        AlertRule(
            site=site,
            camera=body.camera,
            kind=body.kind,
            url=url,
            secret=secret,
            threshold=None if body.threshold_percent is None else body.threshold_percent / 100,
            window_s=None if body.window_minutes is None else round(body.window_minutes * 60),
            min_faces=body.min_faces,
            measure=body.measure,
        ),
    )
    session.commit()
    return CreatedRuleOut(**RuleOut.of(rule).model_dump(), secret=secret)


@router.get("/rules", response_model=RuleList, responses=documented(401))
def list_rules(caller: CallerDep, session: SessionDep) -> RuleList:
    """The rules the key may see (its site's, or every site's)."""
    return RuleList(items=[RuleOut.of(r) for r in alert_repo.list_rules(session, caller.site)])


@router.get("/rules/{rule_id}", response_model=RuleOut, responses=documented(401, 404))
def get_rule(rule_id: RuleId, caller: CallerDep, session: SessionDep) -> RuleOut:
    return RuleOut.of(_visible_rule(session, caller, rule_id))


@router.delete(
    "/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=documented(401, 404)
)
def delete_rule(rule_id: RuleId, caller: CallerDep, session: SessionDep) -> Response:
    """Delete a rule and its delivery log; deliveries in flight are dropped."""
    alert_repo.delete_rule(session, _visible_rule(session, caller, rule_id))
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/deliveries", response_model=DeliveryList, responses=documented(401, 422))
def list_deliveries(
    caller: CallerDep,
    session: SessionDep,
    rule_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES_PAGE)] = 50,
) -> DeliveryList:
    """Webhook deliveries newest first, each with every try and the receiver's status code."""
    found = alert_repo.list_deliveries(
        session, site=caller.site, rule_id=rule_id, status=status_, limit=limit
    )
    attempts = alert_repo.attempts_of(session, [d.id for d in found])
    return DeliveryList(items=[DeliveryOut.of(d, attempts[d.id]) for d in found])

