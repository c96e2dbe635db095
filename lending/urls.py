from django.urls import path

from lending import views

app_name = "lending"

urlpatterns = [
    path("", views.home, name="home"),
    path("decisions/", views.decision_index, name="decision-list"),
    path("decisions/<uuid:public_id>/", views.decision_detail, name="decision-detail"),
    path("decisions/<uuid:public_id>/act", views.decision_act, name="decision-act"),
    path("decisions/<uuid:public_id>/extractions/<slug:field>", views.extraction_review_view,
         name="extraction-review"),
    path("manual-review", views.manual_review_toggle, name="manual-review"),
    path("apply/", views.product_index, name="product-list"),
    path("apply/<slug:slug>/", views.application_new, name="application-new"),
]
