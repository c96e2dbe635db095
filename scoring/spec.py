"""Credit-product specifications: one declarative TOML file per product, validated when loaded.

A spec says, for every field a product knows about, what it is (type, unit, valid range or categories),
where it comes from (the applicant, a credit bureau, or the language model reading the applicant's
text), what it is for (model input, monitoring only, identity/contact), which way risk moves with it,
whether the applicant can act on it, and which specific adverse-action reason it maps to.

Loading refuses a spec that would let the model see a prohibited basis (Reg B 1002.2(z), 1002.6(b))
or that has a model input without a specific reason (Reg B 1002.9(b)(2), Appendix C para. 4).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any

from scoring.reasons import FORM_C1_BY_KEY, insufficient_phrase_in

PRODUCTS_DIR = Path(__file__).resolve().parent / "products"

FIELD_TYPES = ("number", "integer", "category", "boolean", "date", "text")
SOURCES = ("applicant", "bureau", "text")  # "text": derived from free text by the language model
# In the reason of a text-derived input: replaced by the label of the value read from the text.
VALUE_PLACEHOLDER = "{value}"
ROLES = ("model_input", "monitoring_only", "identity", "context")
# Direction of the probability of default as the value grows (FICO's convention for HELOC).
MONOTONE = ("increasing", "decreasing")
CREDIT_TYPES = ("consumer_instalment", "heloc", "mortgage", "credit_card", "business")

# Reg B 1002.2(z) and 1002.6(b): prohibited bases, and the name tokens that reveal one.
PROHIBITED_BASES: dict[str, tuple[str, ...]] = {
    "race": ("race", "ethnicity", "ethnic"),
    "color": ("color", "colour", "skin"),
    "religion": ("religion", "religious", "church"),
    "national_origin": ("nationality", "national", "origin", "citizenship", "foreign", "birthplace",
                        "immigrant", "immigration"),
    "sex": ("sex", "gender"),
    "marital_status": ("marital", "married", "spouse", "widowed", "divorced"),
    "age": ("age", "birth", "dob", "birthdate", "birthday"),
    "public_assistance": ("welfare", "assistance", "snap", "tanf", "benefits"),
    # 1002.6(b)(4): whether there is a telephone listing in the applicant's name.
    "telephone_listing": ("telephone", "phone"),
    # 1002.2(z): the good-faith exercise of a Consumer Credit Protection Act right.
    "ccpa_right_exercised": ("dispute", "disputed"),
}


class SpecError(ValueError):
    """A spec that cannot be loaded. Names the product, the field (if any) and the problem."""

    def __init__(self, product: str, field_name: str | None, problem: str) -> None:
        self.product = product
        self.field_name = field_name
        self.problem = problem
        where = f"product {product!r}" + (f", field {field_name!r}" if field_name else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ProductReason:
    """A product-specific adverse-action reason, with the wording a customer reads."""

    key: str
    text: str
    customer_text: str
    hmda_code: int
    fcra_key_factor: str
    form_reason: str | None = None  # the Form C-1 reason it specialises, if any


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    type: str
    source: str
    role: str
    unit: str = ""
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    category_labels: Mapping[str, str] = field(default_factory=dict)
    special_values: Mapping[int, str] = field(default_factory=dict)
    monotone: str | None = None
    actionable: bool = False
    reason: str | None = None
    required: bool = True
    prohibited_basis: str | None = None
    max_length: int = 2000
    derived_from: tuple[str, ...] = ()  # text fields the language model reads this one from
    # A category field's reference level: the baseline a neutral value is encoded as. Well defined for
    # every category field: the declared ``reference``, else the first category.
    reference: str | None = None
    # Values that must never count for or against an applicant (e.g. a medical purpose, FCRA 604(g) /
    # Reg V 1022.30), each with why: encoded exactly as ``reference`` and never stated as a reason.
    neutral_categories: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_model_input(self) -> bool:
        return self.role == "model_input"

    @property
    def reference_category(self) -> str | None:
        """The baseline level of a category field (declared ``reference``, else its first category)."""
        if self.type != "category" or not self.categories:
            return None
        return self.reference or self.categories[0]

    def is_neutral(self, value: Any) -> bool:
        """Whether ``value`` is one of this field's neutral categories."""
        return isinstance(value, str) and value in self.neutral_categories

    @property
    def submitted(self) -> bool:
        """Whether a client submits this field (text-derived fields are computed, not submitted)."""
        return self.source != "text"


@dataclass(frozen=True)
class Knockout:
    """A policy rule that denies regardless of score, with its own specific reason (comment 9(b)(2)-8)."""

    name: str
    field: str
    op: str
    value: float
    reason: str

    def applies(self, value: Any) -> bool:
        if value is None:
            return False
        number = float(value)
        return {
            "<": number < self.value,
            "<=": number <= self.value,
            ">": number > self.value,
            ">=": number >= self.value,
            "==": number == self.value,
        }[self.op]


@dataclass(frozen=True)
class Policy:
    """Decision policy on the probability of default (PD).

    PD >= cutoff + refer_band: deny. PD < cutoff - refer_band: approve. In between: refer to an officer.
    """

    cutoff: float
    refer_band: float
    knockouts: tuple[Knockout, ...] = ()


@dataclass(frozen=True)
class ProductSpec:
    slug: str
    name: str
    version: str
    credit_type: str
    description: str
    target: str
    fields: tuple[FieldSpec, ...]
    policy: Policy
    reasons: Mapping[str, ProductReason]
    data_loader: str
    data_path: str
    spec_hash: str
    currency: str = "USD"
    creditor: Mapping[str, str] = field(default_factory=dict)

    def field(self, name: str) -> FieldSpec:
        return self._fields_by_name[name]

    @cached_property
    def _fields_by_name(self) -> dict[str, FieldSpec]:
        # Looked up per field of every row (encoding, wording, recourse notes); built once per spec. A
        # cached_property writes the instance's __dict__ directly, which a frozen dataclass allows.
        return {f.name: f for f in self.fields}

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def model_inputs(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.is_model_input)

    @property
    def monitoring_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.role == "monitoring_only")

    @property
    def submitted_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.submitted)

    @property
    def derived_fields(self) -> tuple[FieldSpec, ...]:
        """Fields the language model reads from the applicant's text (``source = "text"``)."""
        return tuple(f for f in self.fields if f.source == "text")

    def reason_for(self, key: str) -> ProductReason:
        """Resolve a reason key: the product's own reasons first, then Form C-1."""
        if key in self.reasons:
            return self.reasons[key]
        form = FORM_C1_BY_KEY[key]
        return ProductReason(key=form.key, text=form.text, customer_text=form.text,
                             hmda_code=form.hmda_code, fcra_key_factor=form.fcra_key_factor,
                             form_reason=form.key)


# --- loading ---------------------------------------------------------------------------------------

def name_tokens(name: str) -> set[str]:
    """Split snake_case and CamelCase names into lower-case tokens ("MSinceOldest" -> m, since, oldest)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return {token for token in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if token}


def prohibited_basis_of(field_spec: FieldSpec) -> str | None:
    """The prohibited basis a field is, or is declared an alias or proxy of."""
    if field_spec.prohibited_basis:
        return field_spec.prohibited_basis
    tokens = name_tokens(field_spec.name)
    for basis, words in PROHIBITED_BASES.items():
        if tokens & set(words):
            return basis
    return None


def _number(product: str, name: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(product, name, f"{key} must be a number, got {value!r}")
    return float(value)


def _parse_field(product: str, raw: Mapping[str, Any]) -> FieldSpec:
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise SpecError(product, str(name), "every field needs a name of letters, digits and underscores")
    known = {
        "name", "label", "type", "source", "role", "unit", "description", "min", "max", "categories",
        "category_labels", "special_values", "monotone", "actionable", "reason", "required",
        "prohibited_basis", "max_length", "derived_from", "reference", "neutral_categories",
    }
    unknown = set(raw) - known
    if unknown:
        raise SpecError(product, name, f"unknown keys {sorted(unknown)}")
    for key, allowed in (("type", FIELD_TYPES), ("source", SOURCES), ("role", ROLES)):
        if raw.get(key) not in allowed:
            raise SpecError(product, name, f"{key} must be one of {list(allowed)}, got {raw.get(key)!r}")
    if raw.get("monotone") not in (None, *MONOTONE):
        raise SpecError(product, name, f"monotone must be one of {list(MONOTONE)}")
    if raw.get("prohibited_basis") not in (None, *PROHIBITED_BASES):
        raise SpecError(product, name, f"prohibited_basis must be one of {list(PROHIBITED_BASES)}")
    special = {int(k): str(v) for k, v in dict(raw.get("special_values", {})).items()}
    neutral_raw = raw.get("neutral_categories", {})
    if not isinstance(neutral_raw, Mapping):
        raise SpecError(product, name, "neutral_categories must be a table of category = \"why it is neutral\"")
    reference = raw.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise SpecError(product, name, f"reference must be one of the field's categories, got {reference!r}")
    spec = FieldSpec(
        name=name,
        label=str(raw.get("label") or name),
        type=raw["type"],
        source=raw["source"],
        role=raw["role"],
        unit=str(raw.get("unit", "")),
        description=str(raw.get("description", "")),
        minimum=_number(product, name, "min", raw.get("min")),
        maximum=_number(product, name, "max", raw.get("max")),
        categories=tuple(str(c) for c in raw.get("categories", ())),
        category_labels={str(k): str(v) for k, v in dict(raw.get("category_labels", {})).items()},
        special_values=special,
        monotone=raw.get("monotone"),
        actionable=bool(raw.get("actionable", False)),
        reason=raw.get("reason"),
        required=bool(raw.get("required", True)),
        prohibited_basis=raw.get("prohibited_basis"),
        max_length=int(raw.get("max_length", 2000)),
        derived_from=tuple(str(x) for x in raw.get("derived_from", ())),
        reference=reference,
        neutral_categories={str(k): str(v).strip() for k, v in neutral_raw.items()},
    )
    _check_field(product, spec)
    return spec


def _check_field(product: str, spec: FieldSpec) -> None:
    name = spec.name
    if spec.type == "category" and not spec.categories:
        raise SpecError(product, name, "a category field needs its categories")
    if spec.type in ("number", "integer") and spec.minimum is not None and spec.maximum is not None \
            and spec.minimum > spec.maximum:
        raise SpecError(product, name, f"min {spec.minimum} is above max {spec.maximum}")
    if spec.monotone and spec.type not in ("number", "integer", "boolean"):
        raise SpecError(product, name, "only numeric fields can have a monotone direction")
    if spec.is_model_input and spec.type == "text":
        raise SpecError(product, name, "free text cannot be a model input; derive structured fields from it")
    _check_neutral(product, spec)
    basis = prohibited_basis_of(spec)
    if basis and spec.is_model_input:
        # Reg B 1002.6(b)(1): no prohibited basis in any system of evaluating creditworthiness.
        raise SpecError(product, name, f"is a prohibited basis ({basis}, Reg B 1002.2(z)/1002.6(b)) and "
                                       "cannot be a model input; declare it monitoring_only")


def _check_neutral(product: str, spec: FieldSpec) -> None:
    """Neutral values and the reference level they are encoded as: only on category fields, each one of
    the field's categories with its reason, the reference itself a category that is not neutral."""
    name = spec.name
    if spec.type != "category":
        if spec.reference is not None or spec.neutral_categories:
            raise SpecError(product, name, "reference and neutral_categories are only for category fields")
        return
    if spec.reference is not None and spec.reference not in spec.categories:
        raise SpecError(product, name, f"reference {spec.reference!r} is not one of its categories "
                                       f"{list(spec.categories)}")
    unknown = [value for value in spec.neutral_categories if value not in spec.categories]
    if unknown:
        raise SpecError(product, name, f"neutral_categories {unknown} are not among its categories "
                                       f"{list(spec.categories)}")
    unexplained = [value for value, why in spec.neutral_categories.items() if not why]
    if unexplained:
        raise SpecError(product, name, f"neutral_categories {unexplained} need the reason they are neutral")
    if spec.neutral_categories and spec.reference is None:
        raise SpecError(product, name, "a field with neutral_categories must declare its reference level "
                                       "(the category a neutral value is encoded as)")
    if spec.reference in spec.neutral_categories:
        raise SpecError(product, name, f"reference {spec.reference!r} cannot itself be neutral")


def _parse_reasons(product: str, raw: Mapping[str, Any]) -> dict[str, ProductReason]:
    reasons: dict[str, ProductReason] = {}
    for key, body in raw.items():
        if key in FORM_C1_BY_KEY:
            raise SpecError(product, None, f"product reason {key!r} shadows a Form C-1 reason key")
        text = str(body.get("text", "")).strip()
        customer_text = str(body.get("customer_text", text)).strip()
        if not text:
            raise SpecError(product, None, f"reason {key!r} has no text")
        for wording in (text, customer_text):
            phrase = insufficient_phrase_in(wording)
            if phrase:
                raise SpecError(product, None, f"reason {key!r} says {phrase!r}, which Reg B 1002.9(b)(2) "
                                               "calls insufficient")
        form_reason = body.get("form_reason")
        if form_reason is not None and form_reason not in FORM_C1_BY_KEY:
            raise SpecError(product, None, f"reason {key!r} names unknown Form C-1 reason {form_reason!r}")
        hmda = body.get("hmda_code", FORM_C1_BY_KEY[form_reason].hmda_code if form_reason else 9)
        if not 1 <= int(hmda) <= 9:
            raise SpecError(product, None, f"reason {key!r} has HMDA code {hmda}, not 1 to 9")
        reasons[key] = ProductReason(
            key=key, text=text, customer_text=customer_text, hmda_code=int(hmda),
            fcra_key_factor=str(body.get("fcra_key_factor", text)), form_reason=form_reason,
        )
    return reasons


def _check_reason(product: str, spec: FieldSpec, reasons: Mapping[str, ProductReason]) -> None:
    if not spec.is_model_input:
        return
    if not spec.reason:
        raise SpecError(product, spec.name, "is a model input without a specific adverse-action reason "
                                            "(Reg B 1002.9(b)(2)); set reason")
    if spec.reason in reasons:
        return
    form = FORM_C1_BY_KEY.get(spec.reason)
    if form is None:
        raise SpecError(product, spec.name, f"reason {spec.reason!r} is neither a product reason nor a "
                                            "Form C-1 reason")
    if form.generic:
        raise SpecError(product, spec.name, f"reason {spec.reason!r} ({form.text!r}) is generic; a model "
                                            "input needs a specific reason (Reg B Appendix C para. 4)")
    if spec.source == "text":
        # A text-derived input must name what the text said, not a form category (circular 2023-03).
        raise SpecError(product, spec.name, "a text-derived model input needs a product-specific reason "
                                            "naming the stated value, not a Form C-1 reason")


def _check_value_reason(product: str, spec: FieldSpec, reasons: Mapping[str, ProductReason]) -> None:
    """A text-derived model input's reason names the value read from the text (CFPB circular 2023-03):
    its wording carries ``{value}``, filled with the category's label, so every category needs one."""
    if not spec.is_model_input or spec.reason is None or spec.reason not in reasons:
        return
    reason = reasons[spec.reason]
    for name, wording in (("text", reason.text), ("customer_text", reason.customer_text)):
        if VALUE_PLACEHOLDER not in wording:
            raise SpecError(product, spec.name, f"reason {reason.key!r}: its {name} must name the stated value "
                                                f"with {VALUE_PLACEHOLDER} (e.g. 'Stated loan purpose: "
                                                f"{VALUE_PLACEHOLDER}'), never only a category of reason")
    unlabelled = [c for c in spec.categories if not spec.category_labels.get(c, "").strip()]
    if unlabelled:
        raise SpecError(product, spec.name, f"categories {unlabelled} need a category_labels entry: the reason "
                                            "names the value in words")


def _check_derived(product: str, spec: FieldSpec, by_name: Mapping[str, FieldSpec]) -> None:
    """A text-derived field: one category field read from one text field of this product, with categories
    the language model's catalogue knows (catalogue categories the product lacks fold into its fallback)."""
    if spec.source != "text":
        if spec.derived_from:
            raise SpecError(product, spec.name, "derived_from is only for fields with source = \"text\"")
        return
    if spec.type != "category":
        raise SpecError(product, spec.name, "a text-derived field must be a category field")
    if len(spec.derived_from) != 1:
        raise SpecError(product, spec.name, "a text-derived field needs derived_from = [one text field]")
    parent = spec.derived_from[0]
    if parent not in by_name or by_name[parent].type != "text":
        raise SpecError(product, spec.name, f"derived_from names {parent!r}, which is not a text field of "
                                            "this product")
    from scoring.language import LanguageConfigError, load_catalogue  # lazy: language imports this module

    try:
        catalogue = load_catalogue(spec.name)
    except LanguageConfigError as exc:
        raise SpecError(product, spec.name, f"the language model has no catalogue for it ({exc})") from None
    unknown = [c for c in spec.categories if c not in catalogue.categories]
    if unknown:
        raise SpecError(product, spec.name, f"categories {unknown} are not in the extractor's catalogue "
                                            f"{list(catalogue.categories)}")
    folded = [c for c in catalogue.categories if c not in spec.categories]
    if folded and catalogue.fallback not in spec.categories:
        raise SpecError(product, spec.name, f"lacks the catalogue's categories {folded} and its "
                                            f"{catalogue.fallback!r} category to fold them into")


def _parse_policy(product: str, raw: Mapping[str, Any], fields: Mapping[str, FieldSpec],
                  reasons: Mapping[str, ProductReason]) -> Policy:
    try:
        cutoff = float(raw["cutoff"])
        band = float(raw.get("refer_band", 0.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(product, None, f"policy needs a numeric cutoff and refer_band ({exc})") from exc
    if not 0.0 < cutoff < 1.0 or not 0.0 <= band < min(cutoff, 1 - cutoff):
        raise SpecError(product, None, "policy cutoff must be in (0, 1) and the refer band must fit inside")
    knockouts = []
    for index, rule in enumerate(raw.get("knockouts", ())):
        name = str(rule.get("name", f"knockout_{index}"))
        target = rule.get("field")
        if target not in fields:
            raise SpecError(product, str(target), f"knockout {name!r} names an unknown field")
        if fields[target].role == "monitoring_only" or prohibited_basis_of(fields[target]):
            raise SpecError(product, target, f"knockout {name!r} uses a monitoring-only field")
        if rule.get("op") not in ("<", "<=", ">", ">=", "=="):
            raise SpecError(product, target, f"knockout {name!r} has an unknown operator {rule.get('op')!r}")
        reason = rule.get("reason")
        if reason not in reasons and (reason not in FORM_C1_BY_KEY or FORM_C1_BY_KEY[reason].generic):
            raise SpecError(product, target, f"knockout {name!r} needs a specific reason, got {reason!r}")
        knockouts.append(Knockout(name=name, field=target, op=rule["op"], value=float(rule["value"]),
                                  reason=reason))
    return Policy(cutoff=cutoff, refer_band=band, knockouts=tuple(knockouts))


def parse_spec(text: str, *, origin: str = "<string>") -> ProductSpec:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(origin, None, f"not valid TOML: {exc}") from exc
    slug = raw.get("slug")
    if not isinstance(slug, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", slug):
        raise SpecError(origin, None, "slug must be lower-case letters, digits and dashes")
    if raw.get("credit_type") not in CREDIT_TYPES:
        raise SpecError(slug, None, f"credit_type must be one of {list(CREDIT_TYPES)}")
    reasons = _parse_reasons(slug, raw.get("reasons", {}))
    fields = [_parse_field(slug, item) for item in raw.get("fields", ())]
    if not fields:
        raise SpecError(slug, None, "a product needs fields")
    by_name: dict[str, FieldSpec] = {}
    for spec in fields:
        if spec.name in by_name:
            raise SpecError(slug, spec.name, "is declared twice")
        by_name[spec.name] = spec
        _check_reason(slug, spec, reasons)
    for spec in fields:
        _check_derived(slug, spec, by_name)
        if spec.source == "text":
            _check_value_reason(slug, spec, reasons)
    if not any(spec.is_model_input for spec in fields):
        raise SpecError(slug, None, "a product needs at least one model input")
    data = raw.get("data", {})
    return ProductSpec(
        slug=slug,
        name=str(raw.get("name", slug)),
        version=str(raw.get("version", "1")),
        credit_type=raw["credit_type"],
        description=str(raw.get("description", "")),
        target=str(raw.get("target", "default")),
        fields=tuple(fields),
        policy=_parse_policy(slug, raw.get("policy", {}), by_name, reasons),
        reasons=reasons,
        data_loader=str(data.get("loader", "csv")),
        data_path=str(data.get("path", "")),
        spec_hash=hashlib.sha256(text.encode()).hexdigest(),
        currency=str(raw.get("currency", "USD")),
        creditor={str(k): str(v) for k, v in dict(raw.get("creditor", {})).items()},
    )


def load_spec(path: str | Path) -> ProductSpec:
    path = Path(path)
    return parse_spec(path.read_text(encoding="utf-8"), origin=path.stem)


def shipped_specs() -> dict[str, ProductSpec]:
    """Every product spec shipped with the code, by slug."""
    specs = (load_spec(path) for path in sorted(PRODUCTS_DIR.glob("*.toml")))
    return {spec.slug: spec for spec in specs}


_SPEC_CACHE: dict[str, ProductSpec] = {}


def get_spec(slug: str, products_dir: Path | None = None) -> ProductSpec:
    """A spec by slug, loaded once per process. Extra products can live in ``products_dir``."""
    if slug not in _SPEC_CACHE:
        for directory in (products_dir, PRODUCTS_DIR):
            if directory is not None and (directory / f"{slug}.toml").exists():
                _SPEC_CACHE[slug] = load_spec(directory / f"{slug}.toml")
                break
        else:
            raise KeyError(f"no product spec named {slug!r}")
    return _SPEC_CACHE[slug]


# --- application values ----------------------------------------------------------------------------

class ApplicationInvalid(ValueError):
    """Submitted values that do not fit the spec. ``errors`` maps each bad field to what is wrong."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in self.errors.items()))


def _clean_number(spec: FieldSpec, value: Any) -> float | int | Decimal:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            raise ValueError("is required")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"must be a number, got {value!r}") from exc
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if spec.type == "integer":
        if number != number.to_integral_value():
            raise ValueError(f"must be a whole number, got {value}")
        as_int = int(number)
        if as_int in spec.special_values:
            return as_int
        _check_range(spec, float(as_int))
        return as_int
    if int(number) == number and int(number) in spec.special_values:
        return int(number)
    _check_range(spec, float(number))
    # Money stays exact: amounts in a currency are kept as Decimal, never as float.
    return number if spec.unit in ("USD", "EUR", "DM") else float(number)


def _check_range(spec: FieldSpec, number: float) -> None:
    if spec.minimum is not None and number < spec.minimum:
        raise ValueError(f"must be at least {_fmt(spec.minimum)}, got {_fmt(number)}")
    if spec.maximum is not None and number > spec.maximum:
        raise ValueError(f"must be at most {_fmt(spec.maximum)}, got {_fmt(number)}")


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def clean_value(spec: FieldSpec, value: Any) -> Any:
    """Validate and normalise one submitted value. Raises ValueError with what is wrong."""
    if spec.type in ("number", "integer"):
        return _clean_number(spec, value)
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ValueError(f"must be true or false, got {value!r}")
    if spec.type == "category":
        if not isinstance(value, str) or value not in spec.categories:
            raise ValueError(f"must be one of {list(spec.categories)}, got {value!r}")
        return value
    if spec.type == "date":
        try:
            return dt.date.fromisoformat(str(value)).isoformat()
        except ValueError as exc:
            raise ValueError(f"must be a date as YYYY-MM-DD, got {value!r}") from exc
    if not isinstance(value, str):
        raise ValueError(f"must be text, got {type(value).__name__}")
    text = value.strip()
    if len(text) > spec.max_length:
        raise ValueError(f"must be at most {spec.max_length} characters, got {len(text)}")
    return text


def validate_fields(spec: ProductSpec, raw: Any) -> dict[str, Any]:
    """Check a submission against the spec and return cleaned values, or raise ApplicationInvalid.

    Every bad field is reported at once: unknown fields, missing required ones, wrong types and
    values out of range or outside the categories.
    """
    if not isinstance(raw, Mapping):
        raise ApplicationInvalid({"fields": ["must be an object mapping field names to values"]})
    errors: dict[str, list[str]] = {}
    submitted = {f.name: f for f in spec.submitted_fields}
    # A text-derived field may be given (a value the lender already knows); when it is not, the
    # language model reads it from its text field (lending.services.application_submit).
    derived = {f.name: f for f in spec.derived_fields}
    for name in raw:
        if name not in submitted and name not in derived:
            reason = "is computed, not submitted" if name in spec.field_names else "is not a field of this product"
            errors.setdefault(str(name), []).append(reason)
    cleaned: dict[str, Any] = {}
    for name, field_spec in derived.items():
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            cleaned[name] = clean_value(field_spec, value)
        except ValueError as exc:
            errors.setdefault(name, []).append(str(exc))
    for name, field_spec in submitted.items():
        value = raw.get(name)
        if value is None or (isinstance(value, str) and value.strip() == "" and field_spec.type != "text"):
            if field_spec.required:
                errors.setdefault(name, []).append("is required")
            continue
        try:
            cleaned[name] = clean_value(field_spec, value)
        except ValueError as exc:
            errors.setdefault(name, []).append(str(exc))
    if errors:
        raise ApplicationInvalid(errors)
    return cleaned


def json_safe(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values as JSON can hold them exactly: Decimal as its string, floats unchanged (repr round-trips)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Decimal):
            out[key] = str(value)
        elif isinstance(value, float) and not math.isfinite(value):
            out[key] = None
        else:
            out[key] = value
    return out
