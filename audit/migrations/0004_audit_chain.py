"""The tamper-evident audit chain: sequence, prev_hash and hash on every event (existing events are
chained in id order), the chain head, and on PostgreSQL a trigger that refuses UPDATE and DELETE."""

from django.db import migrations, models

TRIGGER_SQL = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % on audit_auditevent is refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""
DROP_TRIGGER_SQL = """
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""


def chain_existing_events(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.utils import timezone

    from audit.chain import GENESIS_HASH, event_hash

    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    previous, sequence = GENESIS_HASH, 0
    for event in AuditEvent.objects.order_by("id").iterator():
        sequence += 1
        digest = event_hash(sequence=sequence, event_time=event.event_time, event_type=event.event_type,
                            actor_id=event.actor_id, actor_name=event.actor_name, subject_type=event.subject_type,
                            subject_id=event.subject_id, data=event.data, prev_hash=previous)
        # The model's append-only guards are not on historical models; this is the one-time backfill.
        AuditEvent.objects.filter(pk=event.pk).update(sequence=sequence, prev_hash=previous, hash=digest)
        previous = digest
    AuditChainHead.objects.create(pk=1, sequence=sequence, hash=previous, updated_at=timezone.now())


def add_trigger(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER_SQL, params=None)


def drop_trigger(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGER_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_adverse_action")]

    operations = [
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sequence", models.PositiveBigIntegerField(default=0)),
                ("hash", models.CharField(max_length=64)),
                ("updated_at", models.DateTimeField()),
            ],
        ),
        migrations.AddField("auditevent", "sequence", models.PositiveBigIntegerField(null=True)),
        migrations.AddField("auditevent", "prev_hash", models.CharField(max_length=64, null=True)),
        migrations.AddField("auditevent", "hash", models.CharField(max_length=64, null=True)),
        migrations.RunPython(chain_existing_events, migrations.RunPython.noop),
        migrations.AlterField("auditevent", "sequence", models.PositiveBigIntegerField(unique=True)),
        migrations.AlterField("auditevent", "prev_hash", models.CharField(max_length=64)),
        migrations.AlterField("auditevent", "hash", models.CharField(max_length=64, unique=True)),
        migrations.AlterModelOptions(name="auditevent", options={"ordering": ("sequence",)}),
        migrations.RunPython(add_trigger, drop_trigger),
    ]
