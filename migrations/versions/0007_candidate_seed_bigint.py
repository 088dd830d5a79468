"""candidate seeds as 64-bit integers: candidate_seed(seed, k) = seed x 100,003 + k outgrows 32 bits for round
seeds above about 21,000 (the API takes seeds up to 2^31 - 1); PostgreSQL refused those rows

Revision ID: 0007_seed64
Revises: 0006_api
Create Date: 2026-11-25 15:40:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0007_seed64'
down_revision: Union[str, Sequence[str], None] = '0006_api'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('candidates') as batch:
        batch.alter_column('seed', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('candidates') as batch:
        batch.alter_column('seed', existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
