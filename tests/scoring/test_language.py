"""The language model reads free text into reviewable fields: providers, extraction, evidence, offline.

Tests that load the real packaged model (all-MiniLM-L6-v2, several seconds) are marked ``slow``; the
rest run the same extraction pipeline on the fake OpenAI-compatible server's embeddings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from scoring import demo
from scoring.language import (
    BUILTIN_READINGS,
    Catalogue,
    Extraction,
    Extractor,
    LanguageConfigError,
    LanguageModelError,
    LocalMiniLM,
    OpenAICompatibleProvider,
    TextEncoder,
    extract_application,
    extract_batch,
    extraction_tasks,
    load_catalogue,
    load_head,
    parse_catalogue,
    provider_from_env,
    shipped_catalogues,
    text_sha256,
    words,
)
from scoring.spec import PROHIBITED_BASES, get_spec
from tests.scoring.fake_llm_server import FakeLLMServer, fake_embedding

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fake_encoder(fake_server: FakeLLMServer) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(fake_server.base_url, "test-key", "fake-embedder", timeout=5)


class CountingEncoder:
    """Wraps an encoder and counts its encode calls."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner = inner
        self.calls: list[int] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def version(self) -> str:
        return self.inner.version

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self.inner.encode(texts)


# --- configuration ---------------------------------------------------------------------------------

def test_provider_from_env_defaults_to_the_local_model_without_loading_it() -> None:
    provider = provider_from_env({})
    assert isinstance(provider, LocalMiniLM)
    assert provider.name == "local:all-MiniLM-L6-v2"
    assert "all-MiniLM-L6-v2" in provider.version and provider.dtype in ("float32", "bfloat16")


def test_provider_from_env_openai() -> None:
    provider = provider_from_env({"CANDOR_LM_PROVIDER": "openai", "CANDOR_LM_BASE_URL": "http://127.0.0.1:9/v1",
                                  "CANDOR_LM_API_KEY": "sk-secret", "CANDOR_LM_MODEL": "m", "CANDOR_LM_TIMEOUT": "3"})
    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.endpoint("embeddings") == "http://127.0.0.1:9/v1/embeddings"
    assert provider.timeout == 3.0
    assert "sk-secret" not in repr(provider)


@pytest.mark.parametrize("env, message", [
    ({"CANDOR_LM_PROVIDER": "cloud"}, "must be 'local' or 'openai'"),
    ({"CANDOR_LM_PROVIDER": "openai", "CANDOR_LM_MODEL": "m"}, "CANDOR_LM_BASE_URL"),
    ({"CANDOR_LM_PROVIDER": "openai", "CANDOR_LM_BASE_URL": "file:///etc/passwd", "CANDOR_LM_MODEL": "m"}, "http"),
    ({"CANDOR_LM_THREADS": "zero"}, "CANDOR_LM_THREADS"),
    ({"CANDOR_LM_DTYPE": "float8"}, "CANDOR_LM_DTYPE"),
])
def test_provider_from_env_refuses_bad_configuration(env: dict[str, str], message: str) -> None:
    with pytest.raises(LanguageConfigError, match=message):
        provider_from_env(env)


# --- the OpenAI-compatible provider against the loopback fake ------------------------------------------

def test_openai_embeddings_are_normalised_in_input_order(fake_server: FakeLLMServer,
                                                         fake_encoder: OpenAICompatibleProvider) -> None:
    texts = ["pay off my credit cards", "wedding venue", "retired teacher"]
    matrix = fake_encoder.encode(texts)
    assert matrix.shape == (3, 64)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    for row, text in zip(matrix, texts, strict=True):
        expected = np.array(fake_embedding(text))
        assert np.allclose(row, expected / np.linalg.norm(expected), atol=1e-6)
    request = fake_server.requests[-1]
    assert request["path"] == "/v1/embeddings"
    assert request["headers"]["Authorization"] == "Bearer test-key"
    assert request["body"] == {"model": "fake-embedder", "input": texts}


def test_openai_chat_completion(fake_server: FakeLLMServer) -> None:
    fake_server.chat_reply = lambda messages: f"{len(messages)} messages, last: {messages[-1]['content']}"
    provider = OpenAICompatibleProvider(fake_server.base_url + "/v1/", None, "fake-chat", timeout=5)
    answer = provider.complete([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert answer == "2 messages, last: hi"
    request = fake_server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert "Authorization" not in request["headers"]
    assert request["body"]["model"] == "fake-chat" and request["body"]["temperature"] == 0.0


def test_openai_errors_and_timeouts_raise_without_the_key(fake_server: FakeLLMServer) -> None:
    provider = OpenAICompatibleProvider(fake_server.base_url, "sk-very-secret", "m", timeout=0.3)
    fake_server.fail_with = 503
    with pytest.raises(LanguageModelError, match="HTTP 503") as failed:
        provider.encode(["x"])
    assert "sk-very-secret" not in str(failed.value)
    fake_server.fail_with = 0
    fake_server.delay = 1.0
    with pytest.raises(LanguageModelError):
        provider.complete([{"role": "user", "content": "x"}])


def test_openai_unreachable_server_raises() -> None:
    with FakeLLMServer() as server:
        url = server.base_url
    with pytest.raises(LanguageModelError):
        OpenAICompatibleProvider(url, None, "m", timeout=1).encode(["x"])


# --- catalogues --------------------------------------------------------------------------------------

def test_shipped_catalogues_cover_the_demo_categories() -> None:
    catalogues = shipped_catalogues()
    assert set(catalogues) == {"purpose_category", "employment_type"}
    assert set(demo.PURPOSE_CATEGORIES) <= set(catalogues["purpose_category"].categories)
    assert set(catalogues["employment_type"].categories) == set(demo.EMPLOYMENT_TYPES)
    assert set(catalogues["purpose_category"].categories) == {
        "debt_consolidation", "credit_card", "home_improvement", "major_purchase", "medical", "car",
        "small_business", "vacation", "moving", "wedding", "house", "renewable_energy", "educational", "other"}
    for catalogue in catalogues.values():
        assert all(len(catalogue.examples[c]) >= 5 for c in catalogue.categories)
        assert BUILTIN_READINGS[catalogue.text_field] == catalogue.field


def test_no_example_mentions_a_prohibited_basis() -> None:
    banned = {w for words_ in PROHIBITED_BASES.values() for w in words_} | {"elderly", "retiree"}
    banned -= {"national", "origin", "benefits", "assistance", "foreign", "birth", "phone", "telephone", "dispute"}
    for catalogue in shipped_catalogues().values():
        for examples in catalogue.examples.values():
            for example in examples:
                lowered = {w.lower() for w, _, _ in words(example)}
                assert not lowered & banned, example
                assert "social security" not in example.lower()


def test_the_shipped_head_reads_the_purpose_catalogue() -> None:
    head = load_head("purpose_category")
    assert head is not None
    assert set(head.classes) == set(load_catalogue("purpose_category").categories)
    assert head.weights.shape == (14, 384) and head.encoder == "local:all-MiniLM-L6-v2"
    assert load_head("employment_type") is None


def test_a_catalogue_needs_examples_for_every_category() -> None:
    with pytest.raises(LanguageConfigError, match="examples"):
        parse_catalogue(json.dumps({"field": "f", "text_field": "t",
                                    "categories": {"a": {"examples": ["x"]}, "b": {"examples": []}}}))


# --- extraction mechanics (fake embeddings: fast) ------------------------------------------------------

def small_catalogue() -> Catalogue:
    return parse_catalogue(json.dumps({"field": "purpose_category", "text_field": "loan_purpose_text",
                                       "categories": {
                                           "wedding": {"examples": ["wedding", "wedding venue", "our wedding"]},
                                           "car": {"examples": ["used car", "buy a car", "car repairs"]},
                                           "other": {"examples": ["other", "personal expenses"]}}}))


def test_blank_text_reads_other_with_no_confidence(fake_encoder: OpenAICompatibleProvider) -> None:
    extractor = Extractor(small_catalogue(), fake_encoder)
    for text in (None, "", "   \n"):
        result = extractor.extract(text)
        assert (result.value, result.confidence, result.needs_review) == ("other", 0.0, True)
        assert result.evidence == () and result.alternatives == ()
        assert result.text_sha256 == text_sha256(text)


def test_extraction_fields_evidence_spans_and_review(fake_server: FakeLLMServer,
                                                     fake_encoder: OpenAICompatibleProvider) -> None:
    extractor = Extractor(small_catalogue(), fake_encoder, threshold=0.5)
    assert extractor.head is None  # the shipped head reads MiniLM embeddings only
    text = "  Paying for the wedding venue!"
    result = extractor.extract(text)
    assert isinstance(result, Extraction)
    assert result.value == "wedding" and result.field == "purpose_category"
    assert result.text_field == "loan_purpose_text"
    assert result.provider.startswith("openai-compatible:127.0.0.1")
    assert "fake-embedder" in result.model_version and "T=0.05" in result.model_version
    assert result.text_sha256 == text_sha256(text)
    assert result.alternatives[0][0] == "wedding" and len(result.alternatives) == 3
    assert sum(score for _, score in result.alternatives) == pytest.approx(1.0)
    assert result.needs_review == (result.confidence < 0.5)
    assert result.evidence, "a wedding text has words that drove the reading"
    for evidence in result.evidence:
        assert text[evidence.start:evidence.end] == evidence.text
        assert evidence.score > 0
    assert {e.text.lower() for e in result.evidence} & {"wedding", "venue"}
    scores = [e.score for e in result.evidence]
    assert scores == sorted(scores, reverse=True)
    always = Extractor(small_catalogue(), fake_encoder, threshold=1.0).extract(text)
    assert always.needs_review
    assert json.loads(json.dumps(result.to_dict()))["value"] == "wedding"


def test_all_texts_and_variants_go_through_one_encode_call(fake_encoder: OpenAICompatibleProvider) -> None:
    counting = CountingEncoder(fake_encoder)
    extractor = Extractor(small_catalogue(), counting)
    extractor.prepare()  # the catalogue's examples: once
    counting.calls.clear()
    results = extract_batch([(extractor, "buy a used car for work"), (extractor, None),
                             (extractor, "our wedding")])
    assert len(counting.calls) == 1
    # 2 texts + their content words (buy, used, car, work; wedding) as variants
    assert counting.calls[0] == 2 + 4 + 1
    assert [r.value for r in results] == ["car", "other", "wedding"]
    extractor.extract("a car", evidence=False)
    assert counting.calls[-1] == 1


def test_long_texts_are_occluded_in_groups(fake_encoder: OpenAICompatibleProvider) -> None:
    counting = CountingEncoder(fake_encoder)
    extractor = Extractor(small_catalogue(), counting, max_occlusions=4)
    extractor.prepare()
    counting.calls.clear()
    text = "wedding " + " ".join(f"word{i}" for i in range(30))
    result = extractor.extract(text)
    assert counting.calls == [1 + 4]
    assert all(text[e.start:e.end] == e.text for e in result.evidence)


def test_product_categories_fold_into_other(fake_encoder: OpenAICompatibleProvider) -> None:
    catalogue = load_catalogue("purpose_category")
    extractor = Extractor(catalogue, fake_encoder, categories=demo.PURPOSE_CATEGORIES)
    p = extractor.probabilities(fake_encoder.encode(["tuition for college", "down payment on a house"]))
    assert p.shape == (2, len(demo.PURPOSE_CATEGORIES))
    assert np.allclose(p.sum(axis=1), 1.0)
    with pytest.raises(LanguageConfigError, match="no examples"):
        Extractor(catalogue, fake_encoder, categories=["debt_consolidation", "crypto"])
    with pytest.raises(LanguageConfigError, match="fold"):
        Extractor(catalogue, fake_encoder, categories=["debt_consolidation", "credit_card"])


def test_extraction_tasks_builtin_and_declared() -> None:
    # The demo declares its two text-derived model inputs, with its own categories.
    demo = get_spec("demo")
    tasks = extraction_tasks(demo)
    assert {(t.text_field, t.field) for t in tasks} == {("loan_purpose_text", "purpose_category"),
                                                       ("employment_text", "employment_type")}
    assert next(t for t in tasks if t.field == "purpose_category").categories == \
        demo.field("purpose_category").categories
    # Fewer declared categories: the task reads into exactly those (the rest fold into "other").
    fewer = dataclasses.replace(demo.field("purpose_category"),
                                categories=("debt_consolidation", "credit_card", "car", "other"))
    declared = dataclasses.replace(demo, fields=tuple(fewer if f.name == fewer.name else f for f in demo.fields))
    assert next((t.field, t.categories) for t in extraction_tasks(declared)) == (
        "purpose_category", ("debt_consolidation", "credit_card", "car", "other"))
    # A product with the demo's text fields and no declared readings gets the built-in ones.
    bare = dataclasses.replace(demo, fields=tuple(f for f in demo.fields if f.source != "text"))
    builtin = extraction_tasks(bare)
    assert {(t.text_field, t.field) for t in builtin} == {("loan_purpose_text", "purpose_category"),
                                                         ("employment_text", "employment_type")}
    assert next(t for t in builtin if t.field == "purpose_category").categories == \
        load_catalogue("purpose_category").categories


def test_extract_application_with_the_configured_provider(fake_server: FakeLLMServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    provider = provider_from_env({"CANDOR_LM_PROVIDER": "openai", "CANDOR_LM_BASE_URL": fake_server.base_url,
                                  "CANDOR_LM_MODEL": "fake-embedder"})
    monkeypatch.setattr("scoring.language._DEFAULT_ENCODER", provider)
    result = extract_application(get_spec("demo"), {"loan_purpose_text": "Wedding venue deposit",
                                                    "employment_text": None})
    assert set(result) == {"purpose_category", "employment_type"}
    assert result["purpose_category"].value == "wedding"
    assert result["employment_type"].value == "other" and result["employment_type"].needs_review


# --- the real packaged model (slow: loads it) -----------------------------------------------------------

@pytest.fixture(scope="module")
def local() -> LocalMiniLM:
    return LocalMiniLM().load()


@pytest.mark.slow
def test_real_model_reads_demo_texts(local: LocalMiniLM) -> None:
    frame, _, latents = demo.generate_with_latents(600, seed=4321)
    for text_field, target, categories, floor in (
            ("loan_purpose_text", "purpose_category", demo.PURPOSE_CATEGORIES, 0.85),
            ("employment_text", "employment_type", demo.EMPLOYMENT_TYPES, 0.92)):
        extractor = Extractor(load_catalogue(target), local, categories=categories)
        present = frame[text_field].notna()
        results = extractor.extract_many(frame.loc[present, text_field].tolist(), evidence=False)
        accuracy = np.mean([r.value == t for r, t in zip(results, latents.loc[present, target], strict=True)])
        assert accuracy >= floor, f"{target}: {accuracy:.1%}"
        confident = [r.value == t for r, t in zip(results, latents.loc[present, target], strict=True)
                     if not r.needs_review]
        assert np.mean(confident) >= accuracy  # what skips review is at least as accurate


@pytest.mark.slow
@pytest.mark.parametrize("field, text, expected", [
    ("purpose_category", "Consolidating two credit cards and a personal loan into one payment", "debt_consolidation"),
    ("purpose_category", "Remodeling our kitchen", "home_improvement"),
    ("purpose_category", "Paying for our wedding reception", "wedding"),
    ("purpose_category", "Installing solar panels on the roof", "renewable_energy"),
    ("employment_type", "Retired teacher", "retired"),
    ("employment_type", "I drive for a rideshare app and do deliveries", "contract_or_gig"),
    ("employment_type", "Firefighter with the city", "public_sector"),
])
def test_real_model_clear_texts(local: LocalMiniLM, field: str, text: str, expected: str) -> None:
    result = Extractor(field, local).extract(text)
    assert result.value == expected
    assert result.confidence >= 0.5 and not result.needs_review
    assert result.provider == "local:all-MiniLM-L6-v2"


@pytest.mark.slow
def test_removing_the_top_evidence_word_lowers_confidence(local: LocalMiniLM) -> None:
    for field, text in (("purpose_category", "Need money to fix the roof of my house before winter"),
                        ("employment_type", "I run my own landscaping company with two employees"),
                        ("purpose_category", "Paying off a hospital bill from surgery")):
        extractor = Extractor(field, local)
        result = extractor.extract(text)
        assert result.evidence
        top = result.evidence[0]
        assert text[top.start:top.end] == top.text
        without = (text[:top.start] + text[top.end:]).replace("  ", " ")
        p = extractor.probabilities(local.encode([without]))[0]
        assert p[extractor.categories.index(result.value)] < result.confidence
        assert result.confidence - p[extractor.categories.index(result.value)] == pytest.approx(top.score, abs=0.02)


@pytest.mark.slow
def test_real_model_extract_application_uses_one_encode_call(local: LocalMiniLM) -> None:
    counting = CountingEncoder(local)
    result = extract_application(get_spec("demo"), {
        "loan_purpose_text": "Consolidating two credit cards into one payment",
        "employment_text": "I work as a dental hygienist at a clinic"}, encoder=counting)
    assert counting.calls and len(counting.calls) <= 2  # the employment examples once, then one for the application
    assert result["purpose_category"].value == "debt_consolidation"
    assert result["employment_type"].value in ("salaried", "hourly")
    assert "softmax head" in result["purpose_category"].model_version
    counting.calls.clear()
    extract_application(get_spec("demo"), {"loan_purpose_text": "A used car", "employment_text": "Nurse"},
                        encoder=counting)
    assert len(counting.calls) == 1


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [64, 7])
def test_local_encode_is_bit_identical_to_sentence_transformers_encode(local: LocalMiniLM, batch_size: int) -> None:
    # LocalMiniLM.encode runs the model's forward itself (skipping encode's per-call housekeeping);
    # the stored readings must not move: same batching by length, same normalisation, same bits.
    import torch

    from scoring import language

    frame, _ = demo.generate(40, seed=2024)
    texts = [t for column in ("loan_purpose_text", "employment_text") for t in frame[column].dropna().tolist()]
    texts += ["Wedding.", "Remodeling our kitchen and replacing the roof before winter comes"]
    model = language._load_local(local.dtype).model
    with torch.inference_mode():
        reference = model.encode(texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True,
                                 show_progress_bar=False).float().numpy()
    encoder = LocalMiniLM(dtype=local.dtype, batch_size=batch_size)
    assert len(texts) > 2 * batch_size or batch_size == 64
    np.testing.assert_array_equal(encoder.encode(texts), language._normalise(reference))
    pair = texts[:2]
    with torch.inference_mode():
        reference_pair = model.encode(pair, convert_to_tensor=True, normalize_embeddings=True,
                                      show_progress_bar=False).float().numpy()
    np.testing.assert_array_equal(encoder.encode(pair), language._normalise(reference_pair))


@pytest.mark.slow
def test_local_model_is_loaded_once_per_process(local: LocalMiniLM) -> None:
    from scoring import language

    loaded = language._load_local(local.dtype)
    assert LocalMiniLM(dtype=local.dtype).load() is not None
    assert language._load_local(local.dtype) is loaded


OFFLINE_SCRIPT = """
import json, socket, sys
attempts = []
def refuse(self, address):
    attempts.append(repr(address))
    raise OSError("network disabled in this test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = lambda *a, **k: refuse(None, a[0] if a else None)
sys.path.insert(0, sys.argv[1])
from scoring.language import Extractor, LocalMiniLM
encoder = LocalMiniLM()
purpose = Extractor("purpose_category", encoder).extract("Paying for our wedding")
job = Extractor("employment_type", encoder).extract("Retired nurse")
print(json.dumps({"purpose": purpose.value, "job": job.value, "evidence": [e.text for e in purpose.evidence],
                  "attempts": attempts}))
"""


@pytest.mark.slow
def test_extraction_runs_with_networking_disabled(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "SENTENCE_"))}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"),
                "XDG_CACHE_HOME": str(tmp_path / "cache"), "CANDOR_LM_PROVIDER": "local"})
    done = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, str(REPO)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"purpose": "wedding", "job": "retired", "evidence": result["evidence"], "attempts": []}
    assert "wedding" in [w.lower() for w in result["evidence"]]
    assert not any((tmp_path / "hf-home").rglob("*.safetensors"))  # nothing fetched into a cache


@pytest.mark.slow
def test_concurrent_extractions_agree_with_sequential_ones(local: LocalMiniLM) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = ["Remodeling our kitchen", "Paying off my Visa card", "Buying a used pickup truck", "Wedding.",
             "Start-up costs for my bakery", "Moving to Denver for a new job"]
    extractor = Extractor("purpose_category", local)
    sequential = [extractor.extract(t) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(extractor.extract, texts * 3))
    for got, want in zip(concurrent, sequential * 3, strict=True):
        assert (got.value, got.evidence[:1]) == (want.value, want.evidence[:1])
        assert got.confidence == pytest.approx(want.confidence, abs=1e-6)
