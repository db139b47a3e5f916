"""Controller leases (leader election, fencing epoch) and unique firewall rule positions per VM

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-01 20:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controller.store.models import UTCDateTime


revision: str = '0007'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'controller_leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=255), nullable=True),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('acquired_at', UTCDateTime(), nullable=True),
        sa.Column('renewed_at', UTCDateTime(), nullable=True),
        sa.Column('expires_at', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )
    # Positions were kept dense by the API; a database written by racing replicas may hold duplicates:
    # renumber every VM's rules by (position, created_at) before the constraint goes on.
    connection = op.get_bind()
    rules = sa.table('firewall_rules', sa.column('id', sa.String), sa.column('vm_id', sa.String),
                     sa.column('position', sa.Integer), sa.column('created_at', UTCDateTime))
    rows = connection.execute(sa.select(rules.c.id, rules.c.vm_id)
                              .order_by(rules.c.vm_id, rules.c.position, rules.c.created_at)).all()
    index: dict[str, int] = {}
    for rule_id, vm_id in rows:
        connection.execute(rules.update().where(rules.c.id == rule_id).values(position=-1 - index.get(vm_id, 0)))
        index[vm_id] = index.get(vm_id, 0) + 1
    connection.execute(rules.update().values(position=-1 - rules.c.position))
    with op.batch_alter_table('firewall_rules', schema=None) as batch_op:
        batch_op.drop_index('ix_firewall_rules_vm_position')
        batch_op.create_unique_constraint('uq_firewall_rules_vm_position', ['vm_id', 'position'])


def downgrade() -> None:
    with op.batch_alter_table('firewall_rules', schema=None) as batch_op:
        batch_op.drop_constraint('uq_firewall_rules_vm_position', type_='unique')
        batch_op.create_index('ix_firewall_rules_vm_position', ['vm_id', 'position'], unique=False)
    op.drop_table('controller_leases')
