"""an occurrence records its archive member's position (two members may share a name)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('image_occurrences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('member_index', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('image_occurrences', schema=None) as batch_op:
        batch_op.drop_column('member_index')
