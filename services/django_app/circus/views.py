"""The contract's endpoints: DRF list views (/api/), native async views (/async_api/), I/O probes."""
import benchcontract
from django.http import HttpResponseNotAllowed, JsonResponse
from rest_framework.generics import ListAPIView

from benchproject import versions
from circus import paging, probe, queries
from circus.serializers import ClownCollegeSerializer, TroupeSerializer

if versions.ASGI:  # Django 3.0+ depends on asgiref; 2.2 does not install it (and routes no async view)
    from asgiref.sync import sync_to_async

SAFE_METHODS = ("GET", "HEAD")


# --- /api/: DRF, sync -------------------------------------------------------------------------

class ClownCollegeList(ListAPIView):
    serializer_class = ClownCollegeSerializer

    def get_queryset(self):
        return queries.clowncolleges()


class TroupeList(ListAPIView):
    serializer_class = TroupeSerializer

    def get_queryset(self):
        return queries.troupes()


# --- /async_api/: Django's async ORM, same JSON ------------------------------------------------
# (No @require_GET: before Django 5.0 the method decorators turn an async view into a sync one.)

async def _async_list(request, queryset, serializer_class):
    if request.method not in SAFE_METHODS:
        return HttpResponseNotAllowed(SAFE_METHODS)
    count = await (queryset.acount() if versions.ASYNC_ORM else sync_to_async(queryset.count)())
    try:
        number = paging.page_number(request, count)
    except paging.InvalidPage:
        return JsonResponse(paging.INVALID_PAGE, status=404)
    page = queryset[paging.page_slice(number)]
    if versions.ASYNC_ORM:
        # `async for` over a QuerySet runs _fetch_all() in a thread, prefetch_related included
        # (Django >= 4.1); aiterator() would skip the prefetch before Django 5.0.
        rows = [row async for row in page]
    else:  # Django 3.1-4.0: no async ORM, the sync one in the request's thread (what the study did)
        rows = await sync_to_async(list)(page)
    # Serializing is pure CPU here: every relation was fetched above.
    data = serializer_class(rows, many=True).data
    return JsonResponse(paging.envelope(request, count, number, data))


async def async_clowncollege_list(request):
    return await _async_list(request, queries.clowncolleges(), ClownCollegeSerializer)


async def async_troupe_list(request):
    return await _async_list(request, queries.troupes(), TroupeSerializer)


# --- I/O probe ---------------------------------------------------------------------------------

def _seconds_or_400(request):
    try:
        return probe.parse_seconds(request.GET.get(benchcontract.SLEEP_PARAM)), None
    except ValueError as exc:
        return None, JsonResponse({"detail": str(exc)}, status=400)


def io_sleep(request):
    seconds, error = _seconds_or_400(request)
    if error is not None:
        return error
    return JsonResponse({"slept": probe.pg_sleep(seconds)})


async def async_io_sleep(request):
    seconds, error = _seconds_or_400(request)
    if error is not None:
        return error
    # Django has no async cursor: the query runs in this request's sync thread, like the async ORM.
    return JsonResponse({"slept": await sync_to_async(probe.pg_sleep)(seconds)})
