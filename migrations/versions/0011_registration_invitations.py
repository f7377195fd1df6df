"""registration invitations: Dynamic Registration only through a one-time URL an admin made

One new table; no existing table changes.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa
import tool.db


revision = '0011'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registration_invitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('used_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['registration_id'], ['registration.id'],
                            name=op.f('fk_registration_invitation_registration_id_registration'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registration_invitation')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_registration_invitation_token_hash'))
    )


def downgrade() -> None:
    op.drop_table('registration_invitation')
