"""ids never reused on SQLite: every table whose integer id the API, the pages, webhooks or the storage paths
show gets AUTOINCREMENT. Without it SQLite hands the highest deleted id to the next row: a deleted style's or
job's id became a new row's, so old links, scripts and webhook consumers (and a still-running worker of the
deleted job) reached another user's data. PostgreSQL's sequences never go back: nothing to do there.

SQLite cannot add AUTOINCREMENT to a table in place; each table is rebuilt (Alembic's batch mode: copy, drop,
rename), rows and ids kept. The migrations' connection does not turn foreign keys on (app.infra.db does that
for the app's own connections only), so dropping a parent table in the rebuild deletes no child rows.

Revision ID: 0010_webtrust_autoincrement
Revises: 0009_login_failures
Create Date: 2026-12-06 05:05:00

"""
from typing import Sequence, Union

from alembic import op

revision: str = '0010_webtrust_autoincrement'
down_revision: Union[str, Sequence[str], None] = '0009_login_failures'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Parents before children; every table with an integer id primary key.
TABLES = ('users', 'api_tokens', 'web_sessions', 'styles', 'rounds', 'candidates', 'ratings', 'selections',
          'generations', 'evaluations', 'idempotency_keys')


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
