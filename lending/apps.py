from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LendingConfig(AppConfig):
    name = "lending"
    verbose_name = "Lending"

    def ready(self) -> None:
        from lending.roles import roles_ensure

        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="lending.roles_ensure")
