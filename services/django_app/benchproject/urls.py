from circus import views
from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/clowncollege/", views.ClownCollegeList.as_view()),
    path("api/troupe/", views.TroupeList.as_view()),
    path("async_api/clowncollege/", views.async_clowncollege_list),
    path("async_api/troupe/", views.async_troupe_list),
    path("io/sleep/", views.io_sleep),
    path("async_io/sleep/", views.async_io_sleep),
]
