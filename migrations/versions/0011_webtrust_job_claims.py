"""generations.claim, evaluations.claim: the token of the worker that claimed a generation or an evaluation.
Its end is conditioned on it (app.domain.lifecycle.finish), not found by id alone, so a worker never ends a
row it did not claim.

Revision ID: 0011_webtrust_job_claims
Revises: 0010_webtrust_autoincrement
Create Date: 2026-12-06 05:10:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0011_webtrust_job_claims'
down_revision: Union[str, Sequence[str], None] = '0010_webtrust_autoincrement'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    for table in ('generations', 'evaluations'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('claim', sa.String(length=32), nullable=True))


def downgrade() -> None:
    for table in ('generations', 'evaluations'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('claim')
