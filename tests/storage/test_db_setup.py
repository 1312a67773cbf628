"""Engine setup and migrations: pragmas, revisions, downgrade/upgrade, model/schema parity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from storage.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    current_revision,
    downgrade,
    head_revision,
    is_up_to_date,
    make_engine,
    make_session_factory,
    upgrade,
)
from storage.models import Base, Camera

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "cameras", "jobs", "job_segments", "frame_stats", "face_detections", "api_keys",
    "alert_rules", "alert_deliveries", "alert_attempts", "annotated_videos", "tracks",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_sqlite_engine_creates_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "db.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert (
                connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
            )
        assert path.exists()
    finally:
        engine.dispose()


def test_sqlite_savepoint_rollback_keeps_outer_transaction(tmp_path: Path) -> None:
    # pysqlite's own transaction handling silently breaks SAVEPOINT; make_engine must fix it.
    engine = make_engine(f"sqlite:///{tmp_path / 'sp.sqlite3'}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            savepoint = connection.begin_nested()
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
            savepoint.rollback()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT x FROM t").scalars().all() == [1]
    finally:
        engine.dispose()


def test_session_factory_keeps_objects_readable_after_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            camera = Camera(site="s", name="c")
            session.add(camera)
            session.commit()
        assert camera.name == "c"  # would raise DetachedInstanceError if expired on commit
    finally:
        engine.dispose()


def test_upgrade_reports_revisions_and_downgrade_drops_everything(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    assert current_revision(url) is None
    assert not is_up_to_date(url)

    upgrade(url)
    assert current_revision(url) == head_revision() == "0004"
    assert is_up_to_date(url)
    assert _tables(url) == TABLES

    downgrade(url, "base")
    assert current_revision(url) is None
    assert _tables(url) == set()

    upgrade(url)
    assert is_up_to_date(url)
    assert _tables(url) == TABLES


def test_tracks_migration_keeps_stored_faces_both_ways(empty_database_url: str) -> None:
    # 0003 rebuilds face_detections on SQLite (batch mode): rows must survive up and down.
    url = empty_database_url
    upgrade(url, "0002")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO cameras (id, site, name, created_at) "
                    "VALUES (1, 's', 'c', '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO jobs (id, camera_id, status, input_kind, input_path, "
                    "input_name, settings, recorded_at, frames_done, created_at, updated_at) "
                    "VALUES ('j1', 1, 'succeeded', 'video', 'a.mp4', 'a.mp4', '{}', "
                    "'2026-01-01 00:00:00', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO face_detections (job_id, frame_index, x1, y1, x2, y2, label, "
                    "score, face_prob) VALUES ('j1', 0, 1, 2, 3, 4, 'with_mask', 0.9, 0.95)"
                )
            )
        engine.dispose()
        upgrade(url)
        columns = {c["name"] for c in inspect(engine).get_columns("face_detections")}
        assert "track_id" in columns
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT label, track_id FROM face_detections")).all()
        assert [tuple(r) for r in rows] == [("with_mask", None)]
        assert {fk["name"] for fk in inspect(engine).get_foreign_keys("face_detections")} == {
            "fk_face_detections_job_id_jobs",
            "fk_face_detections_track_id_tracks",
        }
        engine.dispose()
        downgrade(url, "0002")
        assert "tracks" not in _tables(url)
        columns = {c["name"] for c in inspect(engine).get_columns("face_detections")}
        assert "track_id" not in columns
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM face_detections")).scalar() == 1
    finally:
        engine.dispose()


def test_upgrade_works_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    upgrade(url)
    assert is_up_to_date(url)


@pytest.mark.parametrize("cwd_is_root", [True, False])
def test_alembic_cli_uses_settings_database_url(tmp_path: Path, cwd_is_root: bool) -> None:
    database = tmp_path / "cli" / "maskwatch.sqlite3"
    env = os.environ | {"MASKWATCH_DATABASE_URL": f"sqlite:///{database}"}
    command = [sys.executable, "-m", "alembic"]
    if not cwd_is_root:
        command += ["-c", str(REPO_ROOT / "alembic.ini")]
    result = subprocess.run(
        [*command, "upgrade", "head"],
        cwd=REPO_ROOT if cwd_is_root else tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert current_revision(f"sqlite:///{database}") == head_revision()


def test_migrated_schema_matches_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_schema_comparison_detects_a_missing_table(empty_database_url: str) -> None:
    # Guards the parity test above: an unmigrated database must show differences.
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            added = {diff[1].name for diff in compare_metadata(context, Base.metadata)}
        assert TABLES.issubset(added)
    finally:
        engine.dispose()


def test_migrated_constraints_carry_convention_names(engine: Engine) -> None:
    inspector = inspect(engine)
    assert inspector.get_pk_constraint("jobs")["name"] == "pk_jobs"
    assert {fk["name"] for fk in inspector.get_foreign_keys("frame_stats")} == {
        "fk_frame_stats_job_id_jobs"
    }
    assert {uq["name"] for uq in inspector.get_unique_constraints("frame_stats")} == {
        "uq_frame_stats_job_id_frame_index"
    }
    assert {ix["name"] for ix in inspector.get_indexes("jobs")} == {
        "ix_jobs_status",
        "ix_jobs_camera_id_created_at",
    }
