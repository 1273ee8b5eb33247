"""The URLs of the Django rows: benchcontract's paths (Django's path() patterns have no leading "/")."""
import benchcontract as bc
from benchproject import versions
from circus import views
from django.contrib import admin
from django.urls import path


def route(contract_path):
    return contract_path.lstrip("/")


urlpatterns = [
    path(route(bc.ADMIN_INDEX_PATH), admin.site.urls),  # ADMIN_LOGIN_PATH is admin's login/ under it
    path(route(bc.API_PREFIX) + "clowncollege/", views.ClownCollegeList.as_view()),
    path(route(bc.API_PREFIX) + "troupe/", views.TroupeList.as_view()),
    path(route(bc.IO_SLEEP_PATH), views.io_sleep),
]
if versions.ASYNC_VIEWS:  # Django 3.1+: async def views (2.2 would return the coroutine unawaited)
    urlpatterns += [
        path(route(bc.ASYNC_API_PREFIX) + "clowncollege/", views.async_clowncollege_list),
        path(route(bc.ASYNC_API_PREFIX) + "troupe/", views.async_troupe_list),
        path(route(bc.ASYNC_IO_SLEEP_PATH), views.async_io_sleep),
    ]
