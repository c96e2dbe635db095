from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0005_exportjob"),
    ]

    operations = [
        migrations.AddField(
            model_name="legalhold",
            name="matter",
            # Holds placed before the matter was recorded say so rather than pretending to know it.
            field=models.CharField(db_index=True, default="(not recorded)", max_length=200),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="legalhold",
            name="release_note",
            field=models.TextField(blank=True, help_text="Why the hold ended (e.g. the matter's final disposition)."),
        ),
        migrations.AddConstraint(
            model_name="legalhold",
            constraint=models.UniqueConstraint(condition=models.Q(("released_at__isnull", True)),
                                               fields=("application", "matter"),
                                               name="one_active_hold_per_application_and_matter"),
        ),
    ]
