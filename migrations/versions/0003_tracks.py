"""Tracks: one row per appearance of a person in a job; each stored face references its track;
each frame says whether it was analysed or carried over (motion gating).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tracks",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("segment_index", sa.Integer(), nullable=False),
        sa.Column("segment_track", sa.Integer(), nullable=False),
        sa.Column("track_index", sa.Integer(), nullable=True),
        sa.Column("first_frame_index", sa.Integer(), nullable=False),
        sa.Column("last_frame_index", sa.Integer(), nullable=False),
        sa.Column("first_s", sa.Float(), nullable=False),
        sa.Column("last_s", sa.Float(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds_seen", sa.Float(), nullable=False),
        sa.Column("seconds_masked", sa.Float(), nullable=False),
        sa.Column("seconds_unmasked", sa.Float(), nullable=False),
        sa.Column("seconds_incorrect", sa.Float(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=20), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.Column("box_score", sa.Float(), nullable=False),
        sa.Column("handoff", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tracks"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_tracks_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint(
            "job_id",
            "segment_index",
            "segment_track",
            name="uq_tracks_job_id_segment_index_segment_track",
        ),
    )
    op.create_index("ix_tracks_job_id_track_index", "tracks", ["job_id", "track_index"])
    op.create_index("ix_tracks_first_seen_at", "tracks", ["first_seen_at"])
    with op.batch_alter_table("frame_stats") as batch:
        batch.add_column(
            sa.Column("mode", sa.String(length=8), nullable=False, server_default="analysed")
        )
    # Batch mode: SQLite cannot add a foreign key to an existing table in place.
    with op.batch_alter_table("face_detections") as batch:
        batch.add_column(sa.Column("track_id", BIG_ID, nullable=True))
        batch.create_foreign_key(
            "fk_face_detections_track_id_tracks",
            "tracks",
            ["track_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_face_detections_track_id", ["track_id"])


def downgrade() -> None:
    with op.batch_alter_table("face_detections") as batch:
        batch.drop_index("ix_face_detections_track_id")
        batch.drop_constraint("fk_face_detections_track_id_tracks", type_="foreignkey")
        batch.drop_column("track_id")
    with op.batch_alter_table("frame_stats") as batch:
        batch.drop_column("mode")
    op.drop_index("ix_tracks_first_seen_at", table_name="tracks")
    op.drop_index("ix_tracks_job_id_track_index", table_name="tracks")
    op.drop_table("tracks")
