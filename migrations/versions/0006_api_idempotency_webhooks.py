"""api: idempotency keys, webhook callback URLs and per-user webhook secrets (issue 18)

Revision ID: 0006_api
Revises: 0005_pages
Create Date: 2026-11-25 14:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006_api'
down_revision: Union[str, Sequence[str], None] = '0005_pages'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('webhook_secret', sa.String(length=64), nullable=True))
    with op.batch_alter_table('rounds') as batch:
        batch.add_column(sa.Column('callback_url', sa.String(length=2000), nullable=True))
    with op.batch_alter_table('generations') as batch:
        batch.add_column(sa.Column('callback_url', sa.String(length=2000), nullable=True))
    op.create_table(
        'idempotency_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('response_status', sa.Integer(), nullable=True),
        sa.Column('response_body', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'key', name='uq_idempotency_user_key'),
    )
    op.create_index(op.f('ix_idempotency_keys_created_at'), 'idempotency_keys', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_idempotency_keys_created_at'), table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('generations') as batch:
        batch.drop_column('callback_url')
    with op.batch_alter_table('rounds') as batch:
        batch.drop_column('callback_url')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('webhook_secret')
