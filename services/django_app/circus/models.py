"""The original study's domain model, kept as it was (multi-table inheritance from auth.User)."""
from django.contrib.auth.models import User
from django.db import models


class Location(models.Model):
    line_1 = models.CharField(max_length=50, blank=True, default="")
    line_2 = models.CharField(max_length=50, blank=True, default="")
    line_3 = models.CharField(max_length=50, blank=True, default="")
    zipcode = models.CharField(max_length=50, blank=True, default="")


class PerformerMixin(User):
    stage_name = models.CharField(max_length=50, null=True)


class Clown(PerformerMixin):
    CIRCUS_ARTS = "CIRCUS_ARTS"
    MIME = "MIME"
    DANCE = "DANCE"
    SLAPSTICK = "SLAPSTICK"
    BALLOON_ART = "BALLOON_ART"
    CONCENTRATIONS = [
        (CIRCUS_ARTS, "Circus arts"),
        (MIME, "Mime"),
        (DANCE, "Dance"),
        (SLAPSTICK, "Slapstick"),
        (BALLOON_ART, "Balloon art"),
    ]
    concentration = models.CharField(max_length=50, choices=CONCENTRATIONS, default=CIRCUS_ARTS)


class Acrobat(PerformerMixin):
    HAND_BALANCING = "HAND_BALANCING"
    TUMBLING = "TUMBLING"
    JUGGLING = "JUGGLING"
    TRAPEZE = "TRAPEZE"
    CONTORTION = "CONTORTION"
    CONCENTRATIONS = [
        (HAND_BALANCING, "Hand balancing"),
        (TUMBLING, "Tumbling"),
        (JUGGLING, "Juggling"),
        (TRAPEZE, "Trapeze"),
        (CONTORTION, "Contortion"),
    ]
    concentration = models.CharField(max_length=50, choices=CONCENTRATIONS, default=TUMBLING)


class Troupe(models.Model):
    name = models.CharField(max_length=100)
    clowns = models.ManyToManyField(Clown, related_name="troupes")
    acrobats = models.ManyToManyField(Acrobat, related_name="troupes")


class ClownCollege(models.Model):
    name = models.CharField(max_length=100)
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="colleges")
    troupe = models.ForeignKey(Troupe, on_delete=models.CASCADE, related_name="colleges")
