"""pages: a selection records the rule that made it (a CLIP rule's name, or the thumbs up that selected it);
a round keeps its loss curve; a style has a name

Revision ID: 0005_pages
Revises: 0004_references
Create Date: 2026-11-25 13:50:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005_pages'
down_revision: Union[str, Sequence[str], None] = '0004_references'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('selections') as batch:
        batch.add_column(sa.Column('rule', sa.String(length=200), nullable=True))
    with op.batch_alter_table('rounds') as batch:
        batch.add_column(sa.Column('loss_curve', sa.JSON(), nullable=True))
    with op.batch_alter_table('styles') as batch:
        batch.add_column(sa.Column('name', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('styles') as batch:
        batch.drop_column('name')
    with op.batch_alter_table('rounds') as batch:
        batch.drop_column('loss_curve')
    with op.batch_alter_table('selections') as batch:
        batch.drop_column('rule')
