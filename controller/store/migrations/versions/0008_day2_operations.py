"""Day-2 operations: management mode, reboot policy, snapshot schedules, observe-mode drift, cluster nodes

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01 20:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controller.store.models


revision: str = '0008'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cluster_nodes',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('seen_at', controller.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('management', sa.String(length=16), nullable=False, server_default='enforce'))
        batch_op.add_column(sa.Column('reboot_policy', sa.String(length=16), nullable=False, server_default='never'))
        batch_op.add_column(sa.Column('snapshot_schedule', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('drift', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('enable_firewall', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('vm_snapshots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scheduled', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('vm_snapshots', schema=None) as batch_op:
        batch_op.drop_column('scheduled')
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        batch_op.drop_column('enable_firewall')
        batch_op.drop_column('drift')
        batch_op.drop_column('snapshot_schedule')
        batch_op.drop_column('reboot_policy')
        batch_op.drop_column('management')
    op.drop_table('cluster_nodes')
