"""score delivery: a 'waiting' state (the LMS takes no grade until a teacher acts there), the
version a teacher chose to send over a grade changed in the LMS, and one binding per line item

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0006'
branch_labels = None
depends_on = None

STATES = "state IN ('pending', 'delivered', 'retrying', 'waiting', 'failed', 'superseded')"
OLD_STATES = "state IN ('pending', 'delivered', 'retrying', 'failed', 'superseded')"


def upgrade() -> None:
    # Batch mode: SQLite cannot alter a CHECK constraint in place, so the table is rebuilt.
    with op.batch_alter_table('score_delivery', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_score_delivery_state_known'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_score_delivery_state_known'), STATES)
        batch_op.add_column(sa.Column('lms_override_version', sa.Integer(), nullable=True))
    # Two bindings on one line item (before this revision, placements of one Canvas course could
    # find each other's column) would stop the unique index: the oldest keeps the column, the
    # others are unbound, and the worker binds them again (their scores go to their new column).
    op.execute("UPDATE line_item_binding SET lineitem_url = NULL, bound_via = NULL, bound_at = NULL, "
               "next_attempt_at = NULL WHERE lineitem_url IS NOT NULL AND id > (SELECT MIN(other.id) "
               "FROM line_item_binding other WHERE other.lineitem_url = line_item_binding.lineitem_url)")
    with op.batch_alter_table('line_item_binding', schema=None) as batch_op:
        batch_op.create_index('uq_line_item_binding_lineitem_url', ['lineitem_url'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('line_item_binding', schema=None) as batch_op:
        batch_op.drop_index('uq_line_item_binding_lineitem_url')
    # Waiting rows go back to retrying: the old states cannot hold them.
    op.execute("UPDATE score_delivery SET state = 'retrying' WHERE state = 'waiting'")
    with op.batch_alter_table('score_delivery', schema=None) as batch_op:
        batch_op.drop_column('lms_override_version')
        batch_op.drop_constraint(batch_op.f('ck_score_delivery_state_known'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_score_delivery_state_known'), OLD_STATES)
