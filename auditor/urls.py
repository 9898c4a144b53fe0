from django.urls import path

from . import views

app_name = "auditor"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("verify", views.verify_now, name="verify"),
    path("export.json", views.export_json, name="export-json"),
    path("export.csv", views.export_csv, name="export-csv"),
]
