"""Job segments: the time ranges of a job that distributed workers analyse in parallel.

Revision ID: 0002
Revises: 0001
Create Date: 2024-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SEGMENT_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")


def upgrade() -> None:
    statuses = ", ".join(repr(value) for value in SEGMENT_STATUSES)
    op.create_table(
        "job_segments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("segment_index", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("frames_done", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_segments"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_segments_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "segment_index", name="uq_job_segments_job_id_segment_index"),
        # op.f(): the name is final, not run through the naming convention a second time.
        sa.CheckConstraint(f"status IN ({statuses})", name=op.f("ck_job_segments_segment_status")),
    )
    op.create_index("ix_job_segments_status_updated_at", "job_segments", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_job_segments_status_updated_at", table_name="job_segments")
    op.drop_table("job_segments")
