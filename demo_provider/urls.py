from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="demo-home"),
    path("demo/start", views.start, name="demo-start"),
    path("demo/return", views.back, name="demo-return"),
]
