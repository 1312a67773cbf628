"""API keys: creation, lookup by plaintext, revocation."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import ApiKey, utcnow

KEY_PREFIX = "mw_"


def hash_key(plaintext: str) -> str:
    """The SHA-256 hex digest stored for a key."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_api_key(
    session: Session, name: str, site: str | None = None, is_admin: bool = False
) -> tuple[ApiKey, str]:
    """Add a key and return it with its plaintext, which is not stored and cannot be recovered.

    Args:
        name: who or what the key is for.
        site: limit the key to this site; None for every site.
        is_admin: whether the key may manage keys and cameras.
    """
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(name=name, key_hash=hash_key(plaintext), site=site, is_admin=is_admin)
    session.add(api_key)
    session.flush()
    return api_key, plaintext


def authenticate(session: Session, plaintext: str) -> ApiKey | None:
    """The unrevoked key with this plaintext, or None."""
    if not plaintext.startswith(KEY_PREFIX):
        return None
    return session.scalars(
        select(ApiKey).where(ApiKey.key_hash == hash_key(plaintext), ApiKey.revoked_at.is_(None))
    ).first()


def revoke_api_key(session: Session, api_key: ApiKey) -> None:
    """Revoke the key from now on; revoking twice keeps the first time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        session.flush()
