"""release policy per LMS column: the teacher's column settings (release, lmsValue, grade numbers),
held changes of score_delivery rows, and what each student saw at their last release

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa

from tool.db import UTCDateTime


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'delivery_column',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('offering_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=40), nullable=False),
        sa.Column('release', sa.String(length=10), nullable=False),
        sa.Column('lms_value', sa.String(length=10), nullable=False),
        sa.Column('grade_numbers', sa.JSON(), nullable=True),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.CheckConstraint("release IN ('automatic', 'manual')", name=op.f('ck_delivery_column_release_known')),
        sa.CheckConstraint("lms_value IN ('points', 'percent', 'grade')",
                           name=op.f('ck_delivery_column_lms_value_known')),
        sa.ForeignKeyConstraint(['offering_id'], ['offering.id'], name=op.f('fk_delivery_column_offering_id_offering'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_column')),
        sa.UniqueConstraint('offering_id', 'key', name=op.f('uq_delivery_column_offering_id_key')),
    )
    op.create_table(
        'released_view',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('offering_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=40), nullable=False),
        sa.Column('student_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('released_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['offering_id'], ['offering.id'], name=op.f('fk_released_view_offering_id_offering'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['student_id'], ['person.id'], name=op.f('fk_released_view_student_id_person'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_released_view')),
        sa.UniqueConstraint('offering_id', 'key', 'student_id', name=op.f('uq_released_view_offering_id_key_student_id')),
    )
    with op.batch_alter_table('released_view', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_released_view_student_id'), ['student_id'], unique=False)
    with op.batch_alter_table('score_delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    # Held changes go out when the policy is gone (the old behaviour sends every change).
    op.execute("UPDATE score_delivery SET next_attempt_at = updated_at WHERE held")
    with op.batch_alter_table('score_delivery', schema=None) as batch_op:
        batch_op.drop_column('held')
    with op.batch_alter_table('released_view', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_released_view_student_id'))
    op.drop_table('released_view')
    op.drop_table('delivery_column')
