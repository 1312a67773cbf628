"""Initial schema: cameras, jobs, frame_stats, face_detections, api_keys.

Revision ID: 0001
Revises:
Create Date: 2024-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BIGINT primary keys only autoincrement on SQLite when declared INTEGER.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
INPUT_KINDS = ("video", "image")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    op.create_table(
        "cameras",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cameras"),
        sa.UniqueConstraint("site", "name", name="uq_cameras_site_name"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_kind", sa.String(length=16), nullable=False),
        sa.Column("input_path", sa.String(length=1024), nullable=False),
        sa.Column("input_name", sa.String(length=255), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("frames_total", sa.Integer(), nullable=True),
        sa.Column("frames_done", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name="fk_jobs_camera_id_cameras", ondelete="RESTRICT"
        ),
        sa.CheckConstraint(_in("status", JOB_STATUSES), name=op.f("ck_jobs_job_status")),
        sa.CheckConstraint(_in("input_kind", INPUT_KINDS), name=op.f("ck_jobs_input_kind")),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_camera_id_created_at", "jobs", ["camera_id", "created_at"])
    op.create_table(
        "frame_stats",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("timestamp_s", sa.Float(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("faces", sa.Integer(), nullable=False),
        sa.Column("masked", sa.Integer(), nullable=False),
        sa.Column("unmasked", sa.Integer(), nullable=False),
        sa.Column("incorrect", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_frame_stats"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_frame_stats_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "frame_index", name="uq_frame_stats_job_id_frame_index"),
    )
    op.create_index("ix_frame_stats_captured_at", "frame_stats", ["captured_at"])
    op.create_table(
        "face_detections",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("face_prob", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_face_detections"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_face_detections_job_id_jobs", ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_face_detections_job_id_frame_index", "face_detections", ["job_id", "frame_index"]
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("site", sa.String(length=100), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_face_detections_job_id_frame_index", table_name="face_detections")
    op.drop_table("face_detections")
    op.drop_index("ix_frame_stats_captured_at", table_name="frame_stats")
    op.drop_table("frame_stats")
    op.drop_index("ix_jobs_camera_id_created_at", table_name="jobs")
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("cameras")
