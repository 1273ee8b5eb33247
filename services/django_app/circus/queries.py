"""The list querysets, shared by the sync and async views: ordered by id, no N+1 (one query for the
page, plus one per prefetched relation)."""
from django.db.models import Prefetch

from circus.models import Acrobat, Clown, ClownCollege, Troupe


def clowncolleges():
    return ClownCollege.objects.select_related("location", "troupe").order_by("id")


def troupes():
    return Troupe.objects.prefetch_related(
        Prefetch("clowns", queryset=Clown.objects.order_by("id")),
        Prefetch("acrobats", queryset=Acrobat.objects.order_by("id")),
    ).order_by("id")
