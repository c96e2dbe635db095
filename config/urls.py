from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from lending import api

api_v1 = [
    path("products/<slug:slug>", api.product_detail, name="api-product-detail"),
    path("applications", api.application_create, name="api-application-create"),
    path("decisions/<uuid:public_id>", api.decision_detail, name="api-decision-detail"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(api_v1)),
    path("", include("audit.urls")),
    path("", include("lending.urls")),
]
