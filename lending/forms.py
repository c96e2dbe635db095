"""The application form, generated from a product's spec. Validation is the spec's, shared with the API."""

from __future__ import annotations

from typing import Any

from django import forms

from scoring.spec import ApplicationInvalid, FieldSpec, ProductSpec, validate_fields


def _form_field(field_spec: FieldSpec) -> forms.Field:
    common: dict[str, Any] = {"label": field_spec.label, "required": False,
                              "help_text": field_spec.unit if field_spec.unit not in ("", "points") else ""}
    if field_spec.type == "category":
        choices = [("", "—")] + [(c, field_spec.category_labels.get(c, c)) for c in field_spec.categories]
        # A plain field with a select widget: the spec, not Django's choice check, says what is wrong.
        return forms.CharField(widget=forms.Select(choices=choices), **common)
    if field_spec.type == "boolean":
        return forms.CharField(widget=forms.Select(choices=[("", "—"), ("true", "Yes"), ("false", "No")]), **common)
    if field_spec.type == "text":
        widget = forms.Textarea(attrs={"rows": 2}) if field_spec.max_length > 300 else forms.TextInput()
        return forms.CharField(widget=widget, **common)
    attrs = {"inputmode": "decimal"}
    if field_spec.minimum is not None:
        attrs["min"] = str(field_spec.minimum)
    if field_spec.maximum is not None:
        attrs["max"] = str(field_spec.maximum)
    # Plain text inputs: the spec, not the browser, decides what is valid, so both paths agree.
    return forms.CharField(widget=forms.TextInput(attrs=attrs), **common)


class ApplicationForm(forms.Form):
    def __init__(self, *args: Any, spec: ProductSpec, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        for field_spec in spec.submitted_fields:
            self.fields[field_spec.name] = _form_field(field_spec)
        self.validated: dict[str, Any] = {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        submitted = {name: value for name, value in cleaned.items() if value not in (None, "")}
        try:
            self.validated = validate_fields(self.spec, submitted)
        except ApplicationInvalid as exc:
            for name, messages in exc.errors.items():
                for message in messages:
                    self.add_error(name if name in self.fields else None, message)
        return cleaned


class OfficerActionForm(forms.Form):
    """An officer's decision and the factors relied on (Reg B comments 9(b)(2)-6 and -7: a denial states
    the factors the officer actually considered)."""

    action = forms.ChoiceField(choices=[
        ("approve", "Approve"), ("deny", "Deny"), ("override", "Override the model's outcome"),
        ("request_info", "Ask the applicant for more information")], widget=forms.RadioSelect)
    factors = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                        label="Factors relied on (for a denial: these become the stated reasons)")
    other_factor = forms.CharField(required=False, max_length=200,
                                   label="Other factor, specify (stated as written)")
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=4000)

    def __init__(self, *args: Any, spec: ProductSpec, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["factors"].choices = [(f.name, f.label) for f in spec.model_inputs]

    def factors_relied_on(self) -> list[str]:
        chosen = list(self.cleaned_data.get("factors") or [])
        other = (self.cleaned_data.get("other_factor") or "").strip()
        if other:
            chosen.append(f"other: {other}")
        return chosen


class ExtractionReviewForm(forms.Form):
    """An officer's confirmation or correction of a language-model reading. The choices are the field's
    categories; the service checks the value again (``lending.services.extraction_review``)."""

    value = forms.CharField(label="Value")
    comment = forms.CharField(required=False, max_length=4000, widget=forms.TextInput(), label="Comment")

    def __init__(self, *args: Any, field_spec: FieldSpec, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.field_spec = field_spec
        # A plain field with a select widget: the service, not Django's choice check, says what is wrong.
        self.fields["value"].widget = forms.Select(
            choices=[(c, field_spec.category_labels.get(c, c)) for c in field_spec.categories])
        self.fields["value"].label = field_spec.label
