"""VM guest fields (template, cloud-init, disks, NICs, tags, pool, onboot, agent, description), guest status
(addresses, confirmed disk sizes, cloud-init digest) and the cluster's template inventory

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controller.store.models

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('template_name', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('template_vmid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('clone_mode', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('cloud_init_spec', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('cloud_init_password', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('disks', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('networks', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('tags', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('pool', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('start_on_boot', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('agent', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('ip_addresses', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('ip_addresses_at', controller.store.models.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('applied_disks', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('applied_cloud_init', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('cloud_init_applied_at', controller.store.models.UTCDateTime(timezone=True),
                                      nullable=True))
    op.create_table(
        'cluster_templates',
        sa.Column('vmid', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('name', sa.String(length=255), nullable=True),
        sa.Column('node', sa.String(length=64), nullable=False),
        sa.Column('disk_gb', sa.Integer(), nullable=True),
        sa.Column('has_cloud_init', sa.Boolean(), nullable=False),
        sa.Column('listed_disk_bytes', sa.BigInteger(), nullable=True),
        sa.Column('seen_at', controller.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('vmid'),
    )
    with op.batch_alter_table('cluster_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cluster_templates_name'), ['name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cluster_templates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cluster_templates_name'))
    op.drop_table('cluster_templates')
    with op.batch_alter_table('virtual_machines', schema=None) as batch_op:
        for column in ('cloud_init_applied_at', 'applied_cloud_init', 'applied_disks', 'ip_addresses_at',
                       'ip_addresses', 'description', 'agent', 'start_on_boot', 'pool', 'tags', 'networks', 'disks',
                       'cloud_init_password', 'cloud_init_spec', 'clone_mode', 'template_vmid', 'template_name'):
            batch_op.drop_column(column)
