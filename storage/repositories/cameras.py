"""Camera lookups."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import Camera


def get_camera(session: Session, site: str, name: str) -> Camera | None:
    """The camera called ``name`` at ``site``, if any."""
    return session.scalars(select(Camera).where(Camera.site == site, Camera.name == name)).first()


def get_or_create_camera(session: Session, site: str, name: str) -> Camera:
    """The camera called ``name`` at ``site``, created if missing.

    Safe against a concurrent insert of the same camera: the insert runs in a savepoint and,
    if it loses the race, the row the other transaction wrote is returned.

    Raises:
        ValueError: if ``site`` or ``name`` is empty.
    """
    if not site.strip() or not name.strip():
        raise ValueError("camera site and name must not be empty")
    camera = get_camera(session, site, name)
    if camera is not None:
        return camera
    camera = Camera(site=site, name=name)
    try:
        with session.begin_nested():
            session.add(camera)
    except IntegrityError:
        existing = get_camera(session, site, name)
        if existing is None:
            raise
        return existing
    return camera
