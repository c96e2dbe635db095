"""Training data for a product: one loader per ``[data] loader`` of the spec.

Every loader returns a :class:`Dataset` whose frame has one column per *submitted* spec field found in
the data, named as in the spec and holding values as ``scoring.spec.clean_value`` would leave them:
category fields as strings, integer fields as ints, number fields as floats (money too: a frame is
for training, not for booking amounts). ``y`` is 1 for default ("bad") and 0 otherwise.

Loaders:

* ``heloc``  FICO HELOC ``heloc_dataset_v1.csv`` (RiskPerformance "Bad" = 1). All 10,459 rows are
  returned, including the 588 with no bureau record (every attribute -9); training drops those.
* ``german`` UCI Statlog German Credit ``german.data`` (class 2 = bad = 1), columns in file order.
* ``aer_hmda`` the Boston Fed HMDA study as exported from R's AER package (``AER__HMDA.csv``: 2,380
  mortgage applications, Boston 1990; ``deny`` "yes" = 1). yes/no columns become booleans.
* ``demo``   the synthetic generator ``scoring.demo.generate_with_latents(n, seed)``; no file. The
  generator's latent purpose category and employment type are the confirmed values of the spec's
  text-derived fields (missing where the text is blank).
* ``csv``    a lender's own CSV: one column per model-input field (named as in the spec), any other
  submitted fields that it has, and a ``target`` column of 0/1 (1 = default).

File paths in a spec are relative to the shared data directory: ``$CANDOR_SHARED_DATA``, or
``<repo>/../shared/data`` when that is not set. An absolute path is used as it is.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scoring.spec import FieldSpec, ProductSpec

REPO_DIR = Path(__file__).resolve().parent.parent

GERMAN_COLUMNS = (
    "checking_account_status", "duration_months", "credit_history", "purpose", "credit_amount", "savings",
    "employment_since", "installment_rate", "personal_status_sex", "other_debtors", "residence_since",
    "property", "age_years", "other_installment_plans", "housing", "existing_credits", "job",
    "people_liable", "telephone", "foreign_worker",
)


class DatasetError(ValueError):
    """Training data that cannot be loaded; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame
    y: np.ndarray  # int8, 1 = default / bad
    source: str  # the file path, or "demo generator (n=..., seed=...)"
    source_sha256: str

    def __len__(self) -> int:
        return len(self.y)

    @property
    def bad_rate(self) -> float:
        return float(self.y.mean()) if len(self.y) else float("nan")


def shared_data_dir() -> Path:
    configured = os.environ.get("CANDOR_SHARED_DATA")
    return Path(configured) if configured else (REPO_DIR.parent / "shared" / "data")


def resolve_data_path(spec: ProductSpec, path: str | Path | None = None) -> Path:
    if path is not None:
        return Path(path)
    if not spec.data_path:
        raise DatasetError(f"product {spec.slug!r}: the spec has no [data] path and no path was given")
    candidate = Path(spec.data_path)
    return candidate if candidate.is_absolute() else shared_data_dir() / candidate


def _read_bytes(spec: ProductSpec, path: Path) -> bytes:
    if not path.is_file():
        raise DatasetError(f"product {spec.slug!r}: training data file {str(path)!r} does not exist "
                           "(set CANDOR_SHARED_DATA or pass a path)")
    return path.read_bytes()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _conform(spec: ProductSpec, raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Columns for the spec's submitted fields present in ``raw``, with clean_value's conventions."""
    columns: dict[str, pd.Series] = {}
    for field_spec in spec.fields:
        if field_spec.name in raw.columns and (field_spec.submitted or field_spec.source == "text"):
            columns[field_spec.name] = _convert(spec, field_spec, raw[field_spec.name], source)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(raw)))


def _convert(spec: ProductSpec, field_spec: FieldSpec, column: pd.Series, source: str) -> pd.Series:
    values = column.reset_index(drop=True)
    where = f"product {spec.slug!r}, {source}: column {field_spec.name!r}"
    if field_spec.type in ("number", "integer"):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if bad.any():
            raise DatasetError(f"{where} has non-numeric values, e.g. {values[bad].iloc[0]!r}")
        if field_spec.type == "integer":
            if numbers.isna().any():
                return numbers.astype("Int64")
            if not np.all(np.mod(numbers.to_numpy(dtype=float), 1.0) == 0.0):
                raise DatasetError(f"{where} must hold whole numbers")
            return numbers.astype(np.int64)
        return numbers.astype(np.float64)
    if field_spec.type == "category":
        text = values.astype("string").str.strip()
        unknown = sorted(set(text.dropna()) - set(field_spec.categories))
        if unknown:
            raise DatasetError(f"{where} has values outside the spec's categories: {unknown[:5]}")
        return text.astype(object).where(text.notna(), None)
    if field_spec.type == "boolean":
        truthy = ("1", "true", "yes", "on")
        mapped = values.map(lambda v: None if pd.isna(v) else str(v).strip().lower() in truthy)
        return mapped.astype(object)
    return values.astype(object)


def _load_heloc(spec: ProductSpec, path: Path) -> tuple[pd.DataFrame, np.ndarray, str]:
    data = _read_bytes(spec, path)
    raw = pd.read_csv(path)
    if "RiskPerformance" not in raw.columns:
        raise DatasetError(f"{path}: no RiskPerformance column; is this the FICO HELOC file?")
    labels = set(raw["RiskPerformance"].unique())
    if not labels <= {"Bad", "Good"}:
        raise DatasetError(f"{path}: RiskPerformance must be Bad or Good, found {sorted(labels)}")
    y = (raw["RiskPerformance"] == "Bad").to_numpy().astype(np.int8)
    _require_columns(spec, raw, path)
    return _conform(spec, raw, str(path)), y, _sha256(data)


def _load_german(spec: ProductSpec, path: Path) -> tuple[pd.DataFrame, np.ndarray, str]:
    data = _read_bytes(spec, path)
    raw = pd.read_csv(path, sep=r"\s+", header=None, names=[*GERMAN_COLUMNS, "class"], engine="python")
    if raw["class"].isna().any() or not set(raw["class"].unique()) <= {1, 2}:
        raise DatasetError(f"{path}: expected 21 space-separated columns ending in class 1 or 2")
    y = (raw["class"] == 2).to_numpy().astype(np.int8)
    _require_columns(spec, raw, path)
    return _conform(spec, raw, str(path)), y, _sha256(data)


AER_HMDA_COLUMNS = (
    "deny", "pirat", "hirat", "lvrat", "chist", "mhist", "phist", "unemp", "selfemp", "insurance", "condomin",
    "afam", "single", "hschool",
)
AER_HMDA_YES_NO = ("phist", "selfemp", "insurance", "condomin", "afam", "single", "hschool")


def _load_aer_hmda(spec: ProductSpec, path: Path) -> tuple[pd.DataFrame, np.ndarray, str]:
    data = _read_bytes(spec, path)
    raw = pd.read_csv(path)
    missing = [name for name in AER_HMDA_COLUMNS if name not in raw.columns]
    if missing:
        raise DatasetError(f"{path}: missing columns {missing}; is this R's AER::HMDA export?")
    labels = set(raw["deny"].dropna().astype(str).str.strip().str.lower())
    if raw["deny"].isna().any() or not labels <= {"yes", "no"}:
        raise DatasetError(f"{path}: deny must be yes or no (no missing values), found {sorted(labels)}")
    for name in AER_HMDA_YES_NO:
        values = set(raw[name].dropna().astype(str).str.strip().str.lower())
        if not values <= {"yes", "no"}:
            raise DatasetError(f"{path}: column {name!r} must be yes or no, found {sorted(values)[:5]}")
    y = (raw["deny"].astype(str).str.strip().str.lower() == "yes").to_numpy().astype(np.int8)
    _require_columns(spec, raw, path)
    return _conform(spec, raw, str(path)), y, _sha256(data)


def _load_csv(spec: ProductSpec, path: Path) -> tuple[pd.DataFrame, np.ndarray, str]:
    data = _read_bytes(spec, path)
    raw = pd.read_csv(path)
    if "target" not in raw.columns:
        raise DatasetError(f"product {spec.slug!r}, {path}: missing column 'target' (0/1, 1 = default)")
    _require_columns(spec, raw, path)
    target = pd.to_numeric(raw["target"], errors="coerce")
    if target.isna().any() or not set(target.unique()) <= {0, 1}:
        raise DatasetError(f"product {spec.slug!r}, {path}: column 'target' must hold only 0 and 1")
    y = target.to_numpy().astype(np.int8)
    return _conform(spec, raw, str(path)), y, _sha256(data)


def _require_columns(spec: ProductSpec, raw: pd.DataFrame, path: Path) -> None:
    missing = [f.name for f in spec.model_inputs if f.name not in raw.columns]
    if missing:
        raise DatasetError(f"product {spec.slug!r}, {path}: missing columns for model inputs {missing}")


def _load_demo(spec: ProductSpec, n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, str]:
    from scoring import demo  # lazy: the generator is only needed for the demo product

    raw, y_raw, latents = demo.generate_with_latents(n, seed)
    frame = _conform(spec, raw, "demo generator")
    for name, column in _confirmed_derived(spec, raw, latents).items():
        frame[name] = _convert(spec, spec.field(name), column, "demo generator")
    y = np.asarray(y_raw).astype(np.int8)
    digest = hashlib.sha256()
    digest.update(f"demo seed={seed} n={n}\n".encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    digest.update(y.tobytes())
    return frame, y, digest.hexdigest()


def _confirmed_derived(spec: ProductSpec, raw: pd.DataFrame, latents: pd.DataFrame) -> dict[str, pd.Series]:
    """The generator's latent categories as the confirmed values of the spec's text-derived fields.

    Training rows carry what an officer would have confirmed (the truth the text was written from), not a
    reading of it. Where the applicant left the text blank the field is missing, as it is when scoring.
    """
    out: dict[str, pd.Series] = {}
    for field_spec in spec.derived_fields:
        if field_spec.name not in latents.columns:
            continue
        blank = raw[field_spec.derived_from[0]].isna()
        out[field_spec.name] = latents[field_spec.name].astype(object).where(~blank, None).reset_index(drop=True)
    return out


_FILE_LOADERS: dict[str, Callable[[ProductSpec, Path], tuple[pd.DataFrame, np.ndarray, str]]] = {
    "heloc": _load_heloc,
    "german": _load_german,
    "aer_hmda": _load_aer_hmda,
    "csv": _load_csv,
}

LOADERS = (*_FILE_LOADERS, "demo")
# Rows the demo generator gives by default. The demo model's stated reasons are checked against the true
# causes (scripts/check_demo_reasons.py). A sixth of denials are near-ties (true top-2 gap under 0.05
# log-odds), often whole clusters of applicants at the same discrete values, so the check needs every field's
# shape estimated to a few hundredths: top reason = true cause 0.914 on 100,000 rows, 0.940 on 400,000,
# 0.954 on 1,000,000 and 0.961 to 0.968 on 2,000,000 (three fresh samples). 2,000,000 train in two and a
# half to five minutes on two cores, by machine (scoring.additive), and peak at about 4.3 GB.
DEMO_TRAINING_ROWS = 2_000_000


def load_dataset(spec: ProductSpec, path: str | Path | None = None, *, n: int | None = None,
                 seed: int = 0) -> Dataset:
    """Load a product's training data. ``n`` and ``seed`` only matter to the demo generator."""
    loader = spec.data_loader
    if loader == "demo":
        count = n or DEMO_TRAINING_ROWS
        frame, y, digest = _load_demo(spec, count, seed)
        return Dataset(frame=frame, y=y, source=f"demo generator (n={count}, seed={seed})",
                       source_sha256=digest)
    if loader not in _FILE_LOADERS:
        raise DatasetError(f"product {spec.slug!r}: unknown data loader {loader!r}; one of {list(LOADERS)}")
    resolved = resolve_data_path(spec, path)
    frame, y, digest = _FILE_LOADERS[loader](spec, resolved)
    if len(frame) != len(y) or len(y) == 0:
        raise DatasetError(f"product {spec.slug!r}, {resolved}: no rows")
    return Dataset(frame=frame, y=y, source=str(resolved), source_sha256=digest)
