"""the inspectors' workbench: users, people's steps on alerts, triage, silences, outcomes, audit,
login failures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('street', sa.String(length=40), nullable=True),
    sa.Column('district', sa.String(length=40), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('alert_transitions',
    sa.Column('id', _ID, nullable=False),
    sa.Column('alert_id', sa.String(length=64), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=False),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', _TS, nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.alert_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alert_transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_transitions_alert_id'), ['alert_id'], unique=False)

    op.create_table('alert_triage',
    sa.Column('alert_id', sa.String(length=64), nullable=False),
    sa.Column('assignee', sa.String(length=64), nullable=True),
    sa.Column('escalated_at', _TS, nullable=True),
    sa.Column('escalated_by', sa.String(length=64), nullable=True),
    sa.Column('escalation_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.alert_id'], ),
    sa.PrimaryKeyConstraint('alert_id')
    )
    op.create_table('silences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enterprise_id', sa.String(length=18), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('expires_at', _TS, nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', _TS, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_silences_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('outcomes',
    sa.Column('id', _ID, nullable=False),
    sa.Column('transition_id', _ID, nullable=False),
    sa.Column('alert_id', sa.String(length=64), nullable=False),
    sa.Column('enterprise_id', sa.String(length=18), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('resolved_by', sa.String(length=64), nullable=False),
    sa.Column('resolved_at', _TS, nullable=False),
    sa.Column('published_at', _TS, nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.alert_id'], ),
    sa.ForeignKeyConstraint(['transition_id'], ['alert_transitions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('transition_id')
    )
    with op.batch_alter_table('outcomes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outcomes_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outcomes_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outcomes_published_at'), ['published_at'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', _ID, nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=120), nullable=False),
    sa.Column('district', sa.String(length=40), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('recorded_at', _TS, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_actor'), ['actor'], unique=False)
        batch_op.create_index('ix_audit_log_district_at', ['district', 'recorded_at'], unique=False)

    op.create_table('login_failures',
    sa.Column('id', _ID, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('failed_at', _TS, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_username_at', ['username', 'failed_at'], unique=False)


def downgrade() -> None:
    for table in ('login_failures', 'audit_log', 'outcomes', 'silences', 'alert_triage', 'alert_transitions', 'users'):
        op.drop_table(table)
