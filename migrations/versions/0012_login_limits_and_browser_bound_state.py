"""security: limiter counts shared by every process (admin login, anonymous logins and refusals),
the Argon2 re-hash of an older admin password hash, and the platform storage a login was offered

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

from tool.db import UTCDateTime


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_limit',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('window_start', UTCDateTime(), nullable=False),
        sa.Column('locked_until', UTCDateTime(), nullable=True),
        sa.Column('lockouts', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limit')),
    )
    with op.batch_alter_table('rate_limit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_limit_window_start'), ['window_start'], unique=False)
    op.create_table(
        'admin_password_upgrade',
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.String(length=255), nullable=False),
        sa.Column('upgraded_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('source', name=op.f('pk_admin_password_upgrade')),
    )
    with op.batch_alter_table('login_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_target', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('login_state', schema=None) as batch_op:
        batch_op.drop_column('storage_target')
    op.drop_table('admin_password_upgrade')
    with op.batch_alter_table('rate_limit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limit_window_start'))
    op.drop_table('rate_limit')
