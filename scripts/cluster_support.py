"""What the cluster scripts share: a fresh migrated PostgreSQL database to run workers on.

bench_scaling.py, measure_fairness.py and fault_load.py each start real `maskwatch worker`
processes (``tests.distributed.dist_support.WorkerFleet``) on a database of their own; the
scripts put the repository root on ``sys.path`` before importing this module.
"""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage.db import upgrade

# The PostgreSQL server the test suite uses; each script recreates one database of its own on it.
ADMIN_URL = os.environ.get(
    "MASKWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def fresh_database(name: str) -> str:
    """Drop and recreate the database ``name`` on ADMIN_URL's server, migrate it; its URL."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url
