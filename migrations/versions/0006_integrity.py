"""integrity: "who did this" keeps the record (SET NULL, not CASCADE); a real is_student column on
memberships; the deep-linked item's source on the offering

Removing a teacher's person used to delete every entry, revision, assessment and scheme they
recorded (ON DELETE CASCADE on created_by & co.). Now the record stays and only "who" becomes
unknown, as grade_event.actor_id already did. `membership.is_student` replaces the
`roles LIKE '%STUDENT%'` of every roster query. `offering.tally_source` is the deep link's
`tally_source` custom parameter (which target the placement's own line item holds).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# (table, column, made nullable) of every "who did this" foreign key to person.
ACTORS = (
    ('grade_entry', 'created_by', True),
    ('grade_entry', 'updated_by', False),
    ('grade_entry', 'voided_by', False),
    ('grade_entry_revision', 'changed_by', True),
    ('assessment', 'created_by', True),
    ('grade_scheme', 'created_by', True),
    ('grade_scheme', 'applied_by', False),
    ('participation', 'override_by', False),
)


def _actors(ondelete: str, nullable: bool) -> None:
    tables: dict[str, list[tuple[str, bool]]] = {}
    for table, column, was_required in ACTORS:
        tables.setdefault(table, []).append((column, was_required))
    for table, columns in tables.items():
        # SQLite changes a foreign key only by copying the table (batch mode does it there);
        # PostgreSQL alters it in place.
        with op.batch_alter_table(table) as batch_op:
            for column, was_required in columns:
                name = f'fk_{table}_{column}_person'
                batch_op.drop_constraint(name, type_='foreignkey')
                if was_required:
                    batch_op.alter_column(column, existing_type=sa.Integer(), nullable=nullable)
                batch_op.create_foreign_key(name, 'person', [column], ['id'], ondelete=ondelete)


def upgrade() -> None:
    _actors('SET NULL', True)
    with op.batch_alter_table('membership') as batch_op:
        batch_op.add_column(sa.Column('is_student', sa.Boolean(), nullable=False, server_default=sa.false()))
    # roles is a comma-separated list of Tally roles: match the whole word, not a substring.
    op.execute("UPDATE membership SET is_student = (',' || roles || ',' LIKE '%,STUDENT,%')")
    with op.batch_alter_table('membership') as batch_op:
        batch_op.create_index('ix_membership_course_student', ['course_id', 'is_student', 'status', 'person_id'],
                              unique=False)
    with op.batch_alter_table('offering') as batch_op:
        batch_op.add_column(sa.Column('tally_source', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('offering') as batch_op:
        batch_op.drop_column('tally_source')
    with op.batch_alter_table('membership') as batch_op:
        batch_op.drop_index('ix_membership_course_student')
        batch_op.drop_column('is_student')
    # A record whose actor was removed cannot become NOT NULL again: the downgrade then fails
    # rather than delete it.
    _actors('CASCADE', False)
