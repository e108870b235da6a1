"""job records: one row per job, kept beyond its Kubernetes Job

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kbatch_dask.service.history.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kbatch_jobs",
        sa.Column("user", sa.String(255), primary_key=True),
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("submitted", UtcDateTime(), nullable=False),
        sa.Column("started", UtcDateTime(), nullable=True),
        sa.Column("finished", UtcDateTime(), nullable=True),
        sa.Column("cpus", sa.Float(), nullable=True),
        sa.Column("memory", sa.BigInteger(), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=True),
        sa.Column("workers", sa.String(32), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("dashboard", sa.Text(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=True),
        sa.Column("updated", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_kbatch_jobs_user_submitted", "kbatch_jobs", ["user", "submitted"])
    op.create_index("ix_kbatch_jobs_finished", "kbatch_jobs", ["finished"])
    op.create_index("ix_kbatch_jobs_state", "kbatch_jobs", ["state"])


def downgrade() -> None:
    op.drop_table("kbatch_jobs")
