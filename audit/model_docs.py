"""Model documentation per model version (issue 5, section 7; SR 11-7 / SR 26-2 headings), as a page and a
PDF (WeasyPrint renders the same HTML). Compliance, admin and officers may read it.

Performance plots are recomputed on the held-out slice: the training data is loaded again
(``scoring.datasets.load_dataset``; the demo generator with the n and seed the manifest's source names),
its SHA-256 checked against the manifest, rows without information excluded and the stratified
``TEST_SIZE`` split redone with the manifest's seed exactly as ``scoring.train.train_product`` does; the
stored model scores those rows (it was fitted on the other part) and the recomputed AUC is shown beside
the manifest's. Global importance is the mean absolute attribution per field (against all reference
applicants) over the model's reference sample, through ``scoring.explain.Explainer``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from html import escape
from typing import Any

import numpy as np
from django.contrib.auth.decorators import login_required, permission_required
from django.db import transaction
from django.db.models import Avg, Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

from audit.fairness_views import PRODUCT_GROUPS, dataset_reports, headline_airs
from audit.models import AuditEvent
from audit.services import audit_record
from lending.models import Extraction, ModelVersion
from lending.selectors import product_spec, scoring_model_for
from scoring.datasets import load_dataset
from scoring.explain import Explainer
from scoring.features import no_information_rows
from scoring.language import (
    LanguageConfigError,
    extraction_tasks,
    load_catalogue,
    load_head,
    provider_from_env,
    review_threshold,
)
from scoring.reasons import FORM_C1_BY_KEY
from scoring.train import TEST_SIZE

_FIGURES: dict[tuple[str, str], dict[str, Any]] = {}


# --- figures ---------------------------------------------------------------------------------------

def _axes(size: int, pad: int, x_label: str, y_label: str) -> list[str]:
    parts = [f'<rect x="{pad}" y="10" width="{size}" height="{size}" fill="#fff" stroke="#999"/>']
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, y = pad + t * size, 10 + (1 - t) * size
        parts.append(f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{10 + size}" stroke="#eee"/>'
                     f'<line x1="{pad}" y1="{y:.1f}" x2="{pad + size}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{size + 24}" text-anchor="middle" font-size="10">{t:g}</text>'
                     f'<text x="{pad - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="10">{t:g}</text>')
    parts.append(f'<text x="{pad + size / 2}" y="{size + 40}" text-anchor="middle">{escape(x_label)}</text>'
                 f'<text x="12" y="{10 + size / 2}" text-anchor="middle" transform="rotate(-90 12 {10 + size / 2})">'
                 f'{escape(y_label)}</text>')
    return parts


def _svg(width: int, height: int, title: str, desc: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" style="font:12px sans-serif"><title>{escape(title)}</title><desc>{escape(desc)}'
            f'</desc>{"".join(body)}</svg>')


def roc_svg(y: np.ndarray, score: np.ndarray, auc: float) -> str:
    size, pad = 240, 44
    fpr, tpr, _ = roc_curve(y, score)
    points = " ".join(f"{pad + f * size:.1f},{10 + (1 - t) * size:.1f}" for f, t in zip(fpr, tpr, strict=True))
    body = _axes(size, pad, "false positive rate", "true positive rate")
    body += [f'<line x1="{pad}" y1="{10 + size}" x2="{pad + size}" y2="10" stroke="#999" stroke-dasharray="4 3"/>',
             f'<polyline points="{points}" fill="none" stroke="#0b5cab" stroke-width="2"/>',
             f'<text x="{pad + size - 6}" y="{size}" text-anchor="end">AUC {auc:.3f}</text>']
    return _svg(pad + size + 12, size + 50, "ROC curve on the held-out slice",
                f"ROC curve of the model's PD against observed bads on {len(y)} held-out rows; AUC {auc:.3f}.", body)


def calibration_svg(y: np.ndarray, score: np.ndarray, bins: int = 10) -> tuple[str, list[dict[str, float]]]:
    order = np.argsort(score, kind="stable")
    table = []
    for chunk in np.array_split(order, min(bins, len(order))):
        if len(chunk):
            table.append({"n": len(chunk), "predicted": float(score[chunk].mean()), "observed": float(y[chunk].mean())})
    top = max(0.05, max(max(r["predicted"], r["observed"]) for r in table))
    top = min(1.0, float(np.ceil(top * 10) / 10))
    size, pad = 240, 44
    body = _axes(size, pad, f"mean predicted PD (axis to {top:g})", "observed bad rate")
    body.append(f'<line x1="{pad}" y1="{10 + size}" x2="{pad + size}" y2="10" stroke="#999" stroke-dasharray="4 3"/>')
    pts = [(pad + r["predicted"] / top * size, 10 + (1 - r["observed"] / top) * size) for r in table]
    body.append('<polyline points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                + '" fill="none" stroke="#0b5cab" stroke-width="1.5"/>')
    body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#0b5cab"/>' for x, y in pts]
    svg = _svg(pad + size + 12, size + 50, "Calibration on the held-out slice",
               f"Observed bad rate against mean predicted PD in {len(table)} equal-count bins; axes scaled 0 to "
               f"{top:g} (tick labels are fractions of that); the dashed diagonal is perfect calibration.", body)
    return svg.replace(">0.25<", f">{top * 0.25:.3g}<").replace(">0.5<", f">{top * 0.5:.3g}<") \
        .replace(">0.75<", f">{top * 0.75:.3g}<").replace(">1<", f">{top:g}<"), table


def importance_svg(rows: list[tuple[str, float]]) -> str:
    label_w, plot, row_h = 330, 300, 20
    top = max((v for _, v in rows), default=1.0) or 1.0
    body = []
    for i, (label, value) in enumerate(rows):
        y = 6 + i * row_h
        shown = label if len(label) <= 52 else label[:51] + "…"
        body.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(shown)}</text>'
                    f'<rect x="{label_w}" y="{y + 3}" width="{value / top * plot:.1f}" height="13" fill="#3f6ea6"/>'
                    f'<text x="{label_w + value / top * plot + 4:.1f}" y="{y + 13}">{value:.3f}</text>')
    return _svg(label_w + plot + 60, 12 + len(rows) * row_h, "Global importance",
                "Mean absolute attribution (calibrated log-odds of default, against all reference applicants) "
                "per field: " + "; ".join(f"{label} {value:.3f}" for label, value in rows), body)


def _held_out(version: ModelVersion, spec: Any, model: Any) -> dict[str, Any]:
    manifest = version.manifest
    training = manifest.get("training_data", {})
    if spec.data_loader == "demo":
        found = re.search(r"n=(\d+), seed=(\d+)", str(training.get("source", "")))
        if not found:
            raise ValueError("the manifest does not name the demo generator's n and seed")
        dataset = load_dataset(spec, n=int(found.group(1)), seed=int(found.group(2)))
    else:
        dataset = load_dataset(spec)
    if dataset.source_sha256 != version.training_data_sha256:
        raise ValueError(f"the training data found ({dataset.source_sha256[:12]}) is not the data the model was "
                         f"trained on ({version.training_data_sha256[:12]})")
    excluded = no_information_rows(spec, dataset.frame)
    frame = dataset.frame.loc[~excluded].reset_index(drop=True)
    y = np.asarray(dataset.y[~excluded], dtype=np.int8)
    _, test_idx = train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y,
                                   random_state=int(manifest.get("seed", 0)))
    test_idx = np.sort(test_idx)
    y_test = y[test_idx]
    pd_test = model.score_frame(frame.iloc[test_idx].reset_index(drop=True))
    auc = float(roc_auc_score(y_test, pd_test))
    calibration, table = calibration_svg(y_test, pd_test)
    return {"rows": len(y_test), "auc": auc, "roc": mark_safe(roc_svg(y_test, pd_test, auc)),  # noqa: S308
            "calibration": mark_safe(calibration), "calibration_table": table,  # noqa: S308
            "auc_matches": abs(auc - float(version.metrics.get("auc", float("nan")))) < 1e-9}


def _figures(version: ModelVersion) -> dict[str, Any]:
    key = (version.content_hash, version.spec_hash)
    if key in _FIGURES:
        return _FIGURES[key]
    spec = product_spec(product=version.product)
    model = scoring_model_for(model_version=version, allow_unapproved=True)
    out: dict[str, Any] = {"held_out": None, "held_out_error": "", "importance": [], "importance_svg": "",
                           "importance_error": "", "reference_group": {}, "fairness": None,
                           "fairness_error": ""}
    try:
        out["held_out"] = _held_out(version, spec, model)
    except (OSError, ValueError) as exc:
        out["held_out_error"] = str(exc)
    try:
        explainer = Explainer.for_model(model, spec)
        explanations = explainer.explain_many(np.asarray(model.reference), with_recourse=False)
        labels = {f.name: f.label for f in spec.fields}
        means = {name: float(np.mean([abs(e.attributions_all[name]) for e in explanations]))
                 for name in explainer.fields}
        ranked = sorted(means.items(), key=lambda item: -item[1])
        out["importance"] = [{"name": n, "label": labels.get(n, n), "value": v} for n, v in ranked]
        out["importance_svg"] = mark_safe(importance_svg([(labels.get(n, n), v) for n, v in ranked]))  # noqa: S308
        out["reference_rows"] = len(explanations)
        out["reference_group"] = dict(explainer.reference_group.summary())
    except (OSError, ValueError) as exc:
        out["importance_error"] = str(exc)
    definition = PRODUCT_GROUPS.get(version.product.slug)
    if definition is not None:
        try:
            reports, _ = dataset_reports(product=version.product, model_version=version, definition=definition)
            out["fairness"] = [{"title": r.title, "n": r.n, "airs": headline_airs(r)} for _, r in reports]
        except (OSError, ValueError) as exc:
            out["fairness_error"] = str(exc)
    _FIGURES[key] = out
    return out


# --- the document ----------------------------------------------------------------------------------

def registry_fields(version: ModelVersion) -> list[dict[str, str]]:
    """Every field of the model registry record (checklist G(c)), as label and value."""
    rows = []
    for model_field in ModelVersion._meta.concrete_fields:
        if model_field.name in ("manifest",):
            value = "in full in the appendix (manifest.json)"
        elif model_field.name == "approved_by":
            value = version.approved_by.get_username() if version.approved_by else "not approved"
        elif model_field.name == "product":
            value = f"{version.product.name} ({version.product.slug})"
        elif model_field.name == "status":
            value = str(ModelVersion.Status(version.status).label)
        elif model_field.name == "metrics":
            value = _metric_summary(version.metrics)
        else:
            raw = getattr(version, model_field.attname)
            if isinstance(raw, dt.datetime):
                value = f"{raw.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
            else:
                value = "—" if raw in (None, "") else str(raw)
        rows.append({"name": model_field.name, "label": str(model_field.verbose_name), "value": value})
    return rows


def _reason_text(spec: Any, key: str | None) -> str:
    """The words a field's reason is stated in: the product's own reason, else the Form C-1 reason it names."""
    if not key:
        return "—"
    if key in spec.reasons:
        return str(spec.reasons[key].text)
    form_reason = FORM_C1_BY_KEY.get(key)
    return form_reason.text if form_reason is not None else key


def _metric_summary(metrics: dict[str, Any]) -> str:
    """The registry's metrics in one readable line (every value is also in the Performance table and the
    appendix's manifest, to full precision)."""
    parts = []
    for key in sorted(metrics):
        value = metrics[key]
        if isinstance(value, float):
            parts.append(f"{key} {value:.4f}")
        elif isinstance(value, list):
            parts.append(f"{key} " + ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in value))
        elif key != "evaluation":
            parts.append(f"{key} {value}")
    return "; ".join(parts)


def _reader(field: str) -> dict[str, Any]:
    """How the configured provider reads one category field: the method, its versions and where the head came from."""
    catalogue = load_catalogue(field)
    head = load_head(field)
    try:
        provider = provider_from_env()
        provider_name, provider_version, config_error = provider.name, provider.version, ""
    except LanguageConfigError as exc:
        provider_name, provider_version, config_error = "", "", str(exc)
    reads_by_head = head is not None and head.encoder == provider_name
    provenance = head.provenance if head is not None else {}
    return {
        "provider": provider_name, "provider_version": provider_version, "config_error": config_error,
        "catalogue": catalogue.tag, "examples": sum(len(v) for v in catalogue.examples.values()),
        "method": ("a softmax head on the sentence embedding" if reads_by_head
                   else "similarity to the catalogue's hand-written examples"),
        "head": ({"digest": head.digest, "built_on": provenance.get("built_on", "—"),
                  "method": provenance.get("method", "—"),
                  "training": provenance.get("training_files", []), "held_out": provenance.get("held_out_files", [])}
                 if head is not None and reads_by_head else None),
    }


def _readings_in_use(version: ModelVersion, field: str) -> dict[str, Any]:
    """How this model version's readings of one field fared: confidence, referrals, officers' confirmations and
    corrections (an officer's correction is the live measure of the reading's errors)."""
    readings = Extraction.objects.filter(field=field, application__decisions__model_version=version).distinct()
    by_status = dict(readings.order_by().values_list("status").annotate(n=Count("id", distinct=True)))
    totals = readings.aggregate(n=Count("id", distinct=True), mean_confidence=Avg("confidence"),
                                below=Count("id", distinct=True, filter=Q(needs_review=True)))
    confirmed = by_status.get(Extraction.Status.CONFIRMED, 0)
    corrected = by_status.get(Extraction.Status.CORRECTED, 0)
    reviewed = confirmed + corrected
    corrections = list(readings.filter(status=Extraction.Status.CORRECTED).order_by()
                       .values("value", "confirmed_value").annotate(n=Count("id", distinct=True))
                       .order_by("-n", "value", "confirmed_value")[:10])
    versions = list(readings.order_by().values("provider_version").annotate(n=Count("id", distinct=True))
                    .order_by("-n", "provider_version"))
    return {"readings": totals["n"], "mean_confidence": totals["mean_confidence"], "below_threshold": totals["below"],
            "awaiting": by_status.get(Extraction.Status.EXTRACTED, 0), "confirmed": confirmed, "corrected": corrected,
            "reviewed": reviewed, "corrected_share": corrected / reviewed if reviewed else None,
            "corrected_percent": 100 * corrected / reviewed if reviewed else None,
            "corrections": corrections, "provider_versions": versions}


def language_inputs(version: ModelVersion, spec: Any) -> dict[str, Any]:
    """The model's inputs read from free text by a language model: each one a model component of its own (SR 11-7
    covers components and third-party models), so documented here with how it reads and how it fared in use."""
    rows = []
    for task in extraction_tasks(spec):
        label = spec.field(task.field).label if task.field in spec.field_names else task.field
        rows.append({"field": task.field, "label": label, "text_field": task.text_field,
                     "categories": task.categories, **_reader(task.field),
                     "in_use": _readings_in_use(version, task.field)})
    return {"fields": rows, "threshold": review_threshold() if rows else None}


def model_doc_context(version: ModelVersion) -> dict[str, Any]:
    spec = product_spec(product=version.product)
    manifest = version.manifest
    metrics = version.metrics
    figures = _figures(version)
    monotone = dict(zip(manifest.get("feature_field", []), manifest.get("monotone_constraints", []), strict=False))
    # Long field names break after an underscore, not mid-word, in the narrow PDF column.
    fields = [{"name": f.name, "name_breakable": mark_safe(escape(f.name).replace("_", "_<wbr>")),  # noqa: S308
               "label": f.label, "type": f.type, "source": f.source, "role": f.role.replace("_", " "),
               "monotone": f.monotone or "—", "actionable": "yes" if f.actionable else "no",
               "reason": _reason_text(spec, f.reason),
               "constraint": monotone.get(f.name)} for f in spec.fields]
    unseen = [f for f in fields if f["role"] != "model input"]
    metric_rows = [(label, metrics.get(key)) for key, label in (
        ("auc", "Held-out AUC"), ("cv_auc", "Cross-validated AUC (mean)"), ("cv_auc_std", "Cross-validated AUC (SD)"),
        ("ks", "Held-out KS"), ("brier", "Held-out Brier score"), ("benchmark_auc", "Logistic benchmark, held-out AUC"),
        ("benchmark_cv_auc", "Logistic benchmark, cross-validated AUC"), ("test_bad_rate", "Held-out bad rate"),
        ("test_mean_pd", "Held-out mean PD"), ("test_approve_rate", "Held-out approve rate"),
        ("test_refer_rate", "Held-out refer rate"), ("test_deny_rate", "Held-out deny rate"))]
    events = AuditEvent.objects.filter(subject_type=ModelVersion._meta.label_lower, subject_id=str(version.pk)) \
        .order_by("sequence")
    return {
        "version": version, "product": version.product, "spec": spec, "manifest": manifest,
        "training": manifest.get("training_data", {}), "libraries": manifest.get("libraries", {}),
        "hyperparameters": manifest.get("hyperparameters", {}), "policy": spec.policy,
        "registry": registry_fields(version), "fields": fields, "unseen": unseen,
        "metric_rows": [(label, f"{value:.4f}" if isinstance(value, float) else value) for label, value in metric_rows
                        if value is not None],
        "evaluation": metrics.get("evaluation", ""), "cv_fold_aucs": metrics.get("cv_fold_aucs", []),
        "figures": figures, "events": events,
        "manifest_json": json.dumps(manifest, indent=2, sort_keys=True),
        "monotone_fields": [f for f in fields if f["monotone"] != "—"],
        "language": language_inputs(version, spec),
    }


def _version_or_404(slug: str, version: str) -> ModelVersion:
    found = ModelVersion.objects.select_related("product", "approved_by").filter(
        product__slug=slug, version=version).first()
    if found is None:
        raise Http404(f"no model version {version} of {slug}")
    return found


@require_GET
@login_required
@permission_required("lending.view_modelversion", raise_exception=True)
def model_list(request: HttpRequest) -> HttpResponse:
    versions = ModelVersion.objects.select_related("product", "approved_by").order_by("product__slug", "-registered_at")
    return render(request, "audit/model_doc.html", {"versions": versions, "listing": True})


@require_GET
@login_required
@permission_required("lending.view_modelversion", raise_exception=True)
def model_doc(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    return render(request, "audit/model_doc.html", model_doc_context(_version_or_404(slug, version)))


@require_GET
@login_required
@permission_required("lending.view_modelversion", raise_exception=True)
def model_doc_pdf(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    from weasyprint import HTML

    found = _version_or_404(slug, version)
    html = render_to_string("audit/model_doc.html", {**model_doc_context(found), "pdf": True})
    pdf = HTML(string=html, base_url=request.build_absolute_uri("/")).write_pdf()
    with transaction.atomic():
        audit_record(event_type="model.documentation_exported", subject=found, actor=request.user,
                     data={"product": slug, "version": version, "content_hash": found.content_hash,
                           "format": "pdf"})
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="candor-model-{slug}-{version}.pdf"'
    return response
