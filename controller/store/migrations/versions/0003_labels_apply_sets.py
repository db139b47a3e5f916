"""VM labels and the manifest apply set that created a VM

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 23:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('labels', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('apply_set', sa.String(length=63), nullable=True))
        batch_op.create_index(batch_op.f('ix_virtual_machines_apply_set'), ['apply_set'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_virtual_machines_apply_set'))
        batch_op.drop_column('apply_set')
        batch_op.drop_column('labels')
