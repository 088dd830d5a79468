"""style references: a style made from several reference images keeps all of them

Revision ID: 0004_references
Revises: 0003_evaluations
Create Date: 2026-11-25 15:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004_references'
down_revision: Union[str, Sequence[str], None] = '0003_evaluations'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('styles') as batch:
        batch.add_column(sa.Column('extra_references', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('styles') as batch:
        batch.drop_column('extra_references')
