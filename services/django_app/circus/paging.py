"""Page numbers and next/previous links of the JSON contract, shared by the DRF views (through
ContractPagination) and the native async views, so both answer with the same bytes-after-parse.

It mirrors DRF's PageNumberPagination on Django's Paginator (orphans=0, allow_empty_first_page=True):
`?page=` absent or empty -> 1, "last" -> the last page, anything else must be an int in 1..num_pages.
"""
import math

import benchcontract
from rest_framework.utils.urls import remove_query_param, replace_query_param

PAGE_SIZE = benchcontract.PAGE_SIZE
PAGE_PARAM = benchcontract.PAGE_PARAM
INVALID_PAGE = benchcontract.INVALID_PAGE_BODY  # DRF's NotFound(PageNumberPagination.invalid_page_message)


class InvalidPage(Exception):
    """The requested page does not exist: answer 404 INVALID_PAGE."""


def num_pages(count):
    return max(1, math.ceil(count / PAGE_SIZE))


def page_number(request, count):
    """The 1-based page number `request` asks for; raises InvalidPage as DRF would 404."""
    raw = request.GET.get(PAGE_PARAM) or 1
    last = num_pages(count)
    if raw == "last":
        return last
    try:
        number = int(raw)
    except (TypeError, ValueError):
        raise InvalidPage(raw)
    if not 1 <= number <= last:
        raise InvalidPage(raw)
    return number


def next_link(request, number, count):
    if number >= num_pages(count):
        return None
    return replace_query_param(request.build_absolute_uri(), PAGE_PARAM, number + 1)


def previous_link(request, number):
    if number <= 1:
        return None
    url = request.build_absolute_uri()
    if number == 2:
        return remove_query_param(url, PAGE_PARAM)
    return replace_query_param(url, PAGE_PARAM, number - 1)


def page_slice(number):
    """The [start:stop] slice of the id-ordered queryset for page `number`."""
    start = (number - 1) * PAGE_SIZE
    return slice(start, start + PAGE_SIZE)


def envelope(request, count, number, results):
    return {
        "count": count,
        "next": next_link(request, number, count),
        "previous": previous_link(request, number),
        "results": results,
    }
