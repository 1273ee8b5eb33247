from django.apps import AppConfig


class CircusConfig(AppConfig):
    name = "circus"
    default_auto_field = "django.db.models.AutoField"
