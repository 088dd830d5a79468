"""login_failures: the log-in throttle's counts of wrong passwords per account name and per client address,
shared by every web process (they lived in each process's memory).

Revision ID: 0009_login_failures
Revises: 0008_samples
Create Date: 2026-12-04 21:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0009_login_failures'
down_revision: Union[str, Sequence[str], None] = '0008_samples'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'login_failures',
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'key'),
    )
    op.create_index('ix_login_failures_last_at', 'login_failures', ['last_at'])


def downgrade() -> None:
    op.drop_index('ix_login_failures_last_at', table_name='login_failures')
    op.drop_table('login_failures')
