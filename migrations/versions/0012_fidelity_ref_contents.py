"""reference contents: each reference image of a style has its own content ("a house", "a lighthouse"), as in
the CLI; older styles (an empty list) keep the style's one content for every reference

Revision ID: 0012_fidelity_ref_contents
Revises: 0011_webtrust_job_claims
Create Date: 2026-12-06 05:10:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0012_fidelity_ref_contents'
down_revision: Union[str, Sequence[str], None] = '0011_webtrust_job_claims'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('styles') as batch:
        batch.add_column(sa.Column('reference_contents', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('styles') as batch:
        batch.drop_column('reference_contents')
