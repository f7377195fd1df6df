"""operations: signing keys in the database, worker heartbeats, maintenance leases

Three new tables and no change to an existing one, so the upgrade takes no lock on a big table.

Revision ID: 0008
Revises: 0010
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa
import tool.db


revision = '0008'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signing_key',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('private_key', sa.Text(), nullable=False),
    sa.Column('created_at', tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('activates_at', tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('retires_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_signing_key'))
    )
    op.create_table('worker_heartbeat',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seen_at', tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_heartbeat'))
    )
    with op.batch_alter_table('worker_heartbeat', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_heartbeat_seen_at'), ['seen_at'], unique=False)
    op.create_table('maintenance_lease',
    sa.Column('job', sa.String(length=40), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_run_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_outcome', sa.String(length=2000), nullable=False),
    sa.PrimaryKeyConstraint('job', name=op.f('pk_maintenance_lease'))
    )


def downgrade() -> None:
    op.drop_table('maintenance_lease')
    with op.batch_alter_table('worker_heartbeat', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_heartbeat_seen_at'))
    op.drop_table('worker_heartbeat')
    op.drop_table('signing_key')
