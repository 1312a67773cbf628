"""Alert rules, their webhook deliveries and attempts; annotated videos; a dashboard index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
# Written beside 0003 (tracks), which was merged first; hence after it.
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ALERT_KINDS = ("compliance_below", "job_failed", "job_finished")
DELIVERY_STATUSES = ("pending", "delivered", "failed")
VIDEO_STATUSES = ("queued", "running", "succeeded", "failed")


def _one_of(values: Sequence[str]) -> str:
    return ", ".join(repr(value) for value in values)


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(length=100), nullable=False),
        sa.Column("camera", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("window_s", sa.Integer(), nullable=True),
        sa.Column("min_faces", sa.Integer(), nullable=False),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
        # op.f(): the name is final, not run through the naming convention a second time.
        sa.CheckConstraint(
            f"kind IN ({_one_of(ALERT_KINDS)})", name=op.f("ck_alert_rules_alert_kind")
        ),
    )
    op.create_index("ix_alert_rules_site_camera", "alert_rules", ["site", "camera"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"],
            name="fk_alert_deliveries_rule_id_alert_rules", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_alert_deliveries_job_id_jobs", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("rule_id", "job_id", name="uq_alert_deliveries_rule_id_job_id"),
        sa.CheckConstraint(
            f"status IN ({_one_of(DELIVERY_STATUSES)})",
            name=op.f("ck_alert_deliveries_delivery_status"),
        ),
    )
    op.create_index(
        "ix_alert_deliveries_status_updated_at", "alert_deliveries", ["status", "updated_at"]
    )
    op.create_table(
        "alert_attempts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("delivery_id", BIG_ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["alert_deliveries.id"],
            name="fk_alert_attempts_delivery_id_alert_deliveries", ondelete="CASCADE",
        ),
        sa.UniqueConstraint("delivery_id", "attempt", name="uq_alert_attempts_delivery_id_attempt"),
    )


    op.create_table(
        "annotated_videos",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("blur_faces", sa.Boolean(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_annotated_videos"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_annotated_videos_job_id_jobs", ondelete="CASCADE"
        ),
        sa.CheckConstraint(
            f"status IN ({_one_of(VIDEO_STATUSES)})", name=op.f("ck_annotated_videos_video_status")
        ),
    )
    # The dashboard's per-camera series and per-job totals (index-only on PostgreSQL).
    op.create_index(
        "ix_frame_stats_job_id_captured_at",
        "frame_stats",
        ["job_id", "captured_at"],
        postgresql_include=["faces", "masked", "unmasked", "incorrect"],
    )


def downgrade() -> None:
    op.drop_index("ix_frame_stats_job_id_captured_at", table_name="frame_stats")
    op.drop_table("annotated_videos")
    op.drop_table("alert_attempts")
    op.drop_index("ix_alert_deliveries_status_updated_at", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alert_rules_site_camera", table_name="alert_rules")
    op.drop_table("alert_rules")
