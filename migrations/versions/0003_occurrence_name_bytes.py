"""an occurrence keeps the original bytes of a name that had to be escaped

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('image_occurrences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('original_filename_bytes', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('container_bytes', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('image_occurrences', schema=None) as batch_op:
        batch_op.drop_column('container_bytes')
        batch_op.drop_column('original_filename_bytes')
