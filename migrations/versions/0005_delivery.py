"""score delivery: line-item bindings per offering/assessment, delivery state per (line item, person)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa
import tool.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('line_item_binding',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('offering_id', sa.Integer(), nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=True),
    sa.Column('target', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=500), nullable=False),
    sa.Column('score_maximum', tool.db.Points(precision=10, scale=2), nullable=False),
    sa.Column('maximum_source', sa.String(length=12), nullable=False),
    sa.Column('resource_id', sa.String(length=255), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.Column('lineitem_url', sa.String(length=1000), nullable=True),
    sa.Column('container_url', sa.String(length=1000), nullable=True),
    sa.Column('bound_via', sa.String(length=10), nullable=True),
    sa.Column('bound_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('needs_update', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claim_expires_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("bound_via IS NULL OR bound_via IN ('launch', 'found', 'created')", name=op.f('ck_line_item_binding_bound_via_known')),
    sa.CheckConstraint("maximum_source IN ('default', 'teacher', 'lms', 'assessment')", name=op.f('ck_line_item_binding_maximum_source_known')),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessment.id'], name=op.f('fk_line_item_binding_assessment_id_assessment'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['offering_id'], ['offering.id'], name=op.f('fk_line_item_binding_offering_id_offering'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_line_item_binding')),
    sa.UniqueConstraint('offering_id', 'target', name=op.f('uq_line_item_binding_offering_id_target'))
    )
    with op.batch_alter_table('line_item_binding', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_line_item_binding_assessment_id'), ['assessment_id'], unique=False)

    op.create_table('score_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('binding_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('desired', sa.JSON(), nullable=False),
    sa.Column('desired_kind', sa.String(length=10), nullable=False),
    sa.Column('desired_version', sa.Integer(), nullable=False),
    sa.Column('desired_at', tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('accepted', sa.JSON(), nullable=True),
    sa.Column('accepted_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ever_graded', sa.Boolean(), nullable=False),
    sa.Column('inflight', sa.JSON(), nullable=True),
    sa.Column('inflight_version', sa.Integer(), nullable=True),
    sa.Column('last_sent_ts', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claim_expires_at', tool.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("desired_kind IN ('grade', 'no_grade', 'progress')", name=op.f('ck_score_delivery_desired_kind_known')),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'retrying', 'failed', 'superseded')", name=op.f('ck_score_delivery_state_known')),
    sa.ForeignKeyConstraint(['binding_id'], ['line_item_binding.id'], name=op.f('fk_score_delivery_binding_id_line_item_binding'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_score_delivery_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_score_delivery')),
    sa.UniqueConstraint('binding_id', 'person_id', name=op.f('uq_score_delivery_binding_id_person_id'))
    )
    with op.batch_alter_table('score_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_score_delivery_due', ['next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_score_delivery_person_id'), ['person_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('score_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_score_delivery_person_id'))
        batch_op.drop_index('ix_score_delivery_due')

    op.drop_table('score_delivery')
    with op.batch_alter_table('line_item_binding', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_line_item_binding_assessment_id'))

    op.drop_table('line_item_binding')
