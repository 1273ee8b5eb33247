"""DRF pagination of the contract: PageNumberPagination with benchcontract.PAGE_SIZE.

DRF itself validates the page (Django's Paginator); the links come from circus.paging, the helper the
async views use too, so the sync and async endpoints cannot disagree on next/previous.
"""
from rest_framework.pagination import PageNumberPagination

from circus import paging


class ContractPagination(PageNumberPagination):
    page_size = paging.PAGE_SIZE
    page_query_param = paging.PAGE_PARAM

    def get_next_link(self):
        return paging.next_link(self.request, self.page.number, self.page.paginator.count)

    def get_previous_link(self):
        return paging.previous_link(self.request, self.page.number)
