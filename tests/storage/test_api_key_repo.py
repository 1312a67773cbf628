"""API keys: plaintext returned once, only the hash stored, revoked keys rejected."""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session

from storage.repositories.api_keys import authenticate, create_api_key, revoke_api_key


def test_created_key_authenticates(session: Session) -> None:
    api_key, plaintext = create_api_key(session, "dashboard", site="north")
    assert plaintext.startswith("mw_") and len(plaintext) > 40
    found = authenticate(session, plaintext)
    assert found is not None and found.id == api_key.id
    assert found.site == "north" and not found.is_admin


def test_only_the_sha256_is_stored(session: Session) -> None:
    _, plaintext = create_api_key(session, "ops", is_admin=True)
    stored = session.execute(text("SELECT key_hash FROM api_keys")).scalars().all()
    assert stored == [hashlib.sha256(plaintext.encode()).hexdigest()]


def test_each_key_is_different(session: Session) -> None:
    _, first = create_api_key(session, "a")
    _, second = create_api_key(session, "a")
    assert first != second


def test_wrong_or_revoked_keys_are_rejected(session: Session) -> None:
    api_key, plaintext = create_api_key(session, "old")
    assert authenticate(session, plaintext + "x") is None
    assert authenticate(session, "") is None
    revoke_api_key(session, api_key)
    assert api_key.revoked_at is not None
    assert authenticate(session, plaintext) is None
