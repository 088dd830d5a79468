"""rounds.training_samples: the sample images drawn while a round trains (two fixed prompts every N steps),
listed by the round panel: [{"step", "index", "content", "prompt", "seed", "path"}, ...]

Revision ID: 0008_samples
Revises: 0007_seed64
Create Date: 2026-11-25 17:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0008_samples'
down_revision: Union[str, Sequence[str], None] = '0007_seed64'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('rounds') as batch:
        batch.add_column(sa.Column('training_samples', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rounds') as batch:
        batch.drop_column('training_samples')
