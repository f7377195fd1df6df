"""service tokens: the access-token cache shared between processes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa
import tool.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('service_token',
    sa.Column('cache_key', sa.String(length=64), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('token_url', sa.String(length=1000), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('access_token', sa.Text(), nullable=True),
    sa.Column('expires_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fetched_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('cache_key', name=op.f('pk_service_token'))
    )


def downgrade() -> None:
    op.drop_table('service_token')
