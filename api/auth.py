"""Bearer API keys: who is calling, and which site's cameras and jobs they may see."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import services
from storage.repositories import api_keys as key_repo

logger = logging.getLogger(__name__)

# auto_error=False: we answer 401 ourselves, with RFC 6750's WWW-Authenticate header.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `maskwatch keys create`.")

MISSING_KEY = "missing API key: send 'Authorization: Bearer <key>'"
INVALID_KEY = "invalid or revoked API key"


@dataclass(frozen=True)
class Caller:
    """The authenticated key, detached from the session. ``site`` None: every site."""

    key_id: int
    name: str
    site: str | None
    is_admin: bool

    def may_see(self, site: str) -> bool:
        return self.site is None or self.site == site


def _unauthorized(detail: str, error: str | None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": challenge}
    )


def require_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    """The caller's key, or 401. The key itself is never logged, not even in part.

    The lookup uses its own short session, so that no transaction stays open while a
    long upload streams in after it.
    """
    if credentials is None or not credentials.credentials:
        raise _unauthorized(MISSING_KEY, None)
    with services(request).session_factory() as session:
        api_key = key_repo.authenticate(session, credentials.credentials)
        caller = (
            None
            if api_key is None
            else Caller(api_key.id, api_key.name, api_key.site, api_key.is_admin)
        )
    if caller is None:
        client = request.client.host if request.client else "unknown"
        logger.info("rejected an invalid or revoked API key from %s", client)
        raise _unauthorized(INVALID_KEY, "invalid_token")
    return caller


CallerDep = Annotated[Caller, Depends(require_key)]
