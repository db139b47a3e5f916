"""accounts: API tokens, revoked JWTs, login throttle in the database, disabled users, quotas

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controller.store.models


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started', controller.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttle_window_started'), ['window_started'], unique=False)

    op.create_table('revoked_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('expires_at', controller.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti')
    )
    with op.batch_alter_table('revoked_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revoked_tokens_expires_at'), ['expires_at'], unique=False)

    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', controller.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', controller.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', controller.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('tokens_valid_after', controller.store.models.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('max_vms', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_cpu_cores', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_memory_mb', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_disk_gb', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('max_disk_gb')
        batch_op.drop_column('max_memory_mb')
        batch_op.drop_column('max_cpu_cores')
        batch_op.drop_column('max_vms')
        batch_op.drop_column('tokens_valid_after')
        batch_op.drop_column('disabled')

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))
    op.drop_table('api_tokens')
    with op.batch_alter_table('revoked_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revoked_tokens_expires_at'))
    op.drop_table('revoked_tokens')
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttle_window_started'))
    op.drop_table('login_throttle')
