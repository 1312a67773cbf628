"""How fast the dashboard's pages answer on a large history: N cameras x D days of per-minute
frame statistics in PostgreSQL (generated in SQL), each page timed through the app in-process.

    python scripts/bench_dashboard.py --cameras 50 --days 365   # the issue's size (26 M rows)
    python scripts/bench_dashboard.py --cameras 50 --days 30    # a quicker run

Prints the median of --repeat renders per page, and the plan of the camera page's query, so
that a missing index shows. The database (--db, recreated) is left for inspection.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _repo  # noqa: F401  (puts the repository root on sys.path)
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from api.app import create_app
from maskwatch.settings import Settings
from storage.db import make_engine, make_session_factory, upgrade
from storage.repositories import api_keys as key_repo

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
START = "2025-01-01 00:00:00+00"

GENERATE = """
INSERT INTO cameras (site, name, created_at)
SELECT 'site-' || (c % 5), 'cam-' || c, now() FROM generate_series(1, :cameras) AS c;

-- One job per camera and day of footage, succeeded.
INSERT INTO jobs (id, camera_id, status, input_kind, input_path, input_name, settings,
                  recorded_at, frames_total, frames_done, created_at, started_at, finished_at,
                  updated_at)
SELECT md5(cam.id || '-' || d), cam.id, 'succeeded', 'video', '/bench/' || cam.id || '-' || d,
       'day-' || d || '.mp4', '{}', CAST(:start AS timestamptz) + d * interval '1 day', 1440, 1440,
       now(), now(), now(), now()
FROM cameras AS cam, generate_series(0, :days - 1) AS d;

-- One frame per minute; compliance varies by camera, hour of day and day.
INSERT INTO frame_stats (job_id, frame_index, timestamp_s, captured_at, faces, masked,
                         unmasked, incorrect)
SELECT j.id, m, m * 60.0, j.recorded_at + m * interval '1 minute', f.faces,
       f.faces - f.bad, f.bad, 0
FROM jobs AS j, generate_series(0, 1439) AS m,
     LATERAL (SELECT 1 + (m + j.camera_id) % 4 AS faces,
                     ((m / 60) + j.camera_id + extract(day FROM j.recorded_at)::int) % 3 AS bad)
             AS raw,
     LATERAL (SELECT raw.faces AS faces, least(raw.bad, raw.faces) AS bad) AS f;
"""


def recreate(name: str) -> str:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db-name", default="maskwatch_dashboard_bench")
    parser.add_argument("--reuse", action="store_true", help="time the pages of an earlier run")
    args = parser.parse_args()

    if args.reuse:
        url = make_url(ADMIN_URL).set(database=args.db_name).render_as_string(hide_password=False)
        engine = make_engine(url)
    else:
        url = recreate(args.db_name)
        upgrade(url)
        engine = make_engine(url)
        started = time.perf_counter()
        with engine.begin() as connection:
            for statement in filter(str.strip, GENERATE.split(";\n")):
                connection.execute(
                    text(statement), {"cameras": args.cameras, "days": args.days, "start": START}
                )
        # What autovacuum does soon after a bulk load: statistics, and the visibility map
        # that lets PostgreSQL answer from the covering index alone.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
        print(f"generated {args.cameras} cameras x {args.days} days in "
              f"{time.perf_counter() - started:.0f} s")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT count(*) FROM frame_stats")).scalar_one()
    print(f"{rows:,} frame rows")

    factory = make_session_factory(engine)
    with factory() as session:
        _, key = key_repo.create_api_key(session, "bench", is_admin=True)
        session.commit()
    app = create_app(Settings(database_url=url), session_factory=factory)
    camera = "/ui/camera?site=site-1&camera=cam-1&bucket="
    pages: dict[str, str | None] = {
        "sites (every camera, latest job)": "/ui/sites",
        "camera, minutes of the last day (default)": camera + "minute",
        "camera, hours of the last 14 days (default)": camera + "hour",
        "camera, days of the last year (default)": camera + "day",
        "jobs (newest 50)": "/ui/jobs",
        "one job (1440 frames)": None,
    }
    with TestClient(app) as client:
        client.post("/ui/login", data={"key": key})
        job_id = client.get("/v1/jobs", params={"limit": 1},
                            headers={"Authorization": f"Bearer {key}"}).json()["items"][0]["id"]
        pages["one job (1440 frames)"] = f"/ui/jobs/{job_id}"
        print(f"{'page':48} {'median ms':>10} {'min ms':>8}")
        for name, path in pages.items():
            assert path is not None
            times = []
            for _ in range(args.repeat):
                tick = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - tick) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            print(f"{name:48} {statistics.median(times):10.1f} {min(times):8.1f}")

    with engine.connect() as connection:
        plan = connection.execute(text(
            "EXPLAIN SELECT date_trunc('hour', timezone('UTC', f.captured_at)) AS b, "
            "sum(f.faces), sum(f.masked) FROM frame_stats f JOIN jobs j ON j.id = f.job_id "
            "JOIN cameras c ON c.id = j.camera_id WHERE j.status = 'succeeded' "
            "AND c.site = 'site-1' AND c.name = 'cam-1' "
            "AND f.captured_at >= CAST(:start AS timestamptz) + (:days - 14) * interval '1 day' "
            "GROUP BY b ORDER BY b"), {"start": START, "days": args.days}).scalars().all()
    print("plan of the camera page's query (hours, 14 days):")
    print("\n".join("  " + line for line in plan))
    engine.dispose()


if __name__ == "__main__":
    main()
