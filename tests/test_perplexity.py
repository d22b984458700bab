"""Tests of rolling-window perplexity against hand computations on a tiny GPT-NeoX."""

import copy
import logging
import math

import numpy as np
import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from memprune.perplexity import (
    Window,
    compute_perplexity,
    count_bytes,
    count_words,
    plan_windows,
    select_documents,
)

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB_SIZE = 300
END_OF_TEXT = 0
DOCUMENT_LENGTHS = [1, 5, 16, 17, 40, 33]


@pytest.fixture(scope="module")
def model() -> GPTNeoXForCausalLM:
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=64,
    )
    return GPTNeoXForCausalLM(config).eval()


@pytest.fixture(scope="module")
def documents() -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [rng.integers(1, VOCAB_SIZE, size=length).tolist() for length in DOCUMENT_LENGTHS]


TEXTS = ["one two", "three  four\nfive", "six", "seven eight nine", "ten", "héllo wörld"]


def nll_of_window(model, inputs: list[int], targets: list[int], n_scored: int) -> float:
    """Sum the NLL of the last `n_scored` targets, from the full log-softmax of model(inputs).logits."""
    with torch.no_grad():
        logits = model(torch.tensor([inputs])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)[torch.arange(len(targets)), torch.tensor(targets)]
    return float(-logprobs[-n_scored:].sum())


def test_perplexity_equals_whole_document_nll(model, documents):
    """With a window longer than every document, each document is one pass over [prefix] + tokens[:-1]."""
    result = compute_perplexity(model, documents, TEXTS, window=64, batch_size=4, prefix_token_id=END_OF_TEXT)

    expected = 0.0
    for tokens in documents:
        expected += nll_of_window(model, [END_OF_TEXT] + tokens[:-1], tokens, len(tokens))

    assert result["n_windows"] == len(documents)
    assert result["n_tokens"] == sum(DOCUMENT_LENGTHS)
    assert result["nll_sum"] == pytest.approx(expected, rel=1e-6)
    assert result["token_perplexity"] == pytest.approx(math.exp(expected / sum(DOCUMENT_LENGTHS)), rel=1e-6)


@pytest.mark.parametrize("fill_last_window", [True, False])
def test_perplexity_equals_windowed_hand_computation(model, documents, fill_last_window):
    window = 16
    result = compute_perplexity(
        model, documents, TEXTS, window=window, batch_size=3, prefix_token_id=END_OF_TEXT,
        fill_last_window=fill_last_window,
    )

    expected = 0.0
    n_windows = 0
    for tokens in documents:
        sequence = [END_OF_TEXT] + tokens
        for start in range(0, len(tokens), window):
            end = min(start + window, len(tokens))
            context_start = max(0, end - window) if fill_last_window else start
            inputs = sequence[context_start:end]
            targets = sequence[context_start + 1 : end + 1]
            expected += nll_of_window(model, inputs, targets, end - start)
            n_windows += 1

    assert result["n_windows"] == n_windows
    assert result["nll_sum"] == pytest.approx(expected, rel=1e-6)


def test_fill_last_window_changes_only_partial_windows(model, documents):
    filled = compute_perplexity(model, documents[:3], TEXTS[:3], window=16, batch_size=2, prefix_token_id=END_OF_TEXT)
    disjoint = compute_perplexity(
        model, documents[:3], TEXTS[:3], window=16, batch_size=2, prefix_token_id=END_OF_TEXT, fill_last_window=False
    )

    # Documents of 1, 5 and 16 tokens fit in one window, so both modes run the same passes.
    assert filled["nll_sum"] == pytest.approx(disjoint["nll_sum"], rel=1e-9)


def test_batch_size_does_not_change_perplexity(model, documents):
    single = compute_perplexity(model, documents, TEXTS, window=8, batch_size=1, prefix_token_id=END_OF_TEXT)
    batched = compute_perplexity(model, documents, TEXTS, window=8, batch_size=5, prefix_token_id=END_OF_TEXT)

    assert single["nll_sum"] == pytest.approx(batched["nll_sum"], rel=1e-6)
    assert single["n_windows"] == batched["n_windows"]


@pytest.mark.parametrize("fill_last_window", [True, False])
def test_windows_score_every_token_once(fill_last_window):
    for n_tokens in [1, 2, 9, 10, 11, 34, 100]:
        for window in [1, 3, 10]:
            windows = plan_windows(n_tokens, window, fill_last_window=fill_last_window)
            scored = [position for item in windows for position in range(item.end - item.n_scored, item.end)]

            assert scored == list(range(n_tokens))
            assert all(1 <= item.end - item.start <= window for item in windows)
            assert all(item.start >= 0 for item in windows)


def test_windows_without_fill_are_disjoint():
    windows = plan_windows(34, 10, fill_last_window=False)
    inputs = [position for item in windows for position in range(item.start, item.end)]

    assert inputs == list(range(34))
    assert all(item.end - item.start == item.n_scored for item in windows)


def test_last_window_filled_like_lm_evaluation_harness():
    """34 tokens, window 10: the last window reads 10 tokens of context and scores tokens 30..33."""
    windows = plan_windows(34, 10, document=3)

    assert windows == [
        Window(document=3, start=0, end=10, n_scored=10),
        Window(document=3, start=10, end=20, n_scored=10),
        Window(document=3, start=20, end=30, n_scored=10),
        Window(document=3, start=24, end=34, n_scored=4),
    ]


def test_word_and_byte_counts():
    assert count_words("one two") == 2
    assert count_words("three  four\nfive") == 3
    assert count_words(" leading space") == 3  # re.split keeps the empty string before a leading space
    assert count_words("") == 1
    assert count_bytes("héllo") == 6
    assert count_bytes("abc") == 3


def test_perplexity_word_and_byte_metrics(model, documents):
    result = compute_perplexity(model, documents, TEXTS, window=16, batch_size=4, prefix_token_id=END_OF_TEXT)
    n_words = 2 + 3 + 1 + 3 + 1 + 2
    n_bytes = sum(len(text.encode("utf-8")) for text in TEXTS)

    assert result["n_words"] == n_words
    assert result["n_bytes"] == n_bytes
    assert result["n_documents"] == len(documents)
    assert result["window"] == 16
    assert result["word_perplexity"] == pytest.approx(math.exp(result["nll_sum"] / n_words))
    assert result["bits_per_byte"] == pytest.approx(result["nll_sum"] / (n_bytes * math.log(2)))
    assert result["n_nan_windows"] == 0


def test_nan_model_gives_nan_perplexity(model, documents, caplog):
    diverged = copy.deepcopy(model)
    with torch.no_grad():
        diverged.gpt_neox.layers[0].attention.dense.weight[0, 0] = math.nan

    with caplog.at_level(logging.WARNING, logger="memprune.perplexity"):
        result = compute_perplexity(diverged, documents, TEXTS, window=16, batch_size=4, prefix_token_id=END_OF_TEXT)

    assert math.isnan(result["token_perplexity"])
    assert math.isnan(result["word_perplexity"])
    assert math.isnan(result["bits_per_byte"])
    assert result["n_nan_windows"] == result["n_windows"]
    assert f"{result['n_windows']} of {result['n_windows']} windows have a NaN" in caplog.text


def test_invalid_documents_raise(model, documents):
    with pytest.raises(ValueError, match="6 token documents but 5 texts"):
        compute_perplexity(model, documents, TEXTS[:5], window=16, batch_size=4, prefix_token_id=END_OF_TEXT)
    with pytest.raises(ValueError, match="document 1 has no tokens"):
        compute_perplexity(model, [[1], []], ["a", "b"], window=16, batch_size=4, prefix_token_id=END_OF_TEXT)
    with pytest.raises(ValueError, match=r"document 0 .* outside \[0, 300\)"):
        compute_perplexity(model, [[300]], ["a"], window=16, batch_size=4, prefix_token_id=END_OF_TEXT)
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        compute_perplexity(model, documents, TEXTS, window=65, batch_size=4, prefix_token_id=END_OF_TEXT)


def test_select_documents_skips_empty_and_stops_at_budget(caplog):
    token_documents = [[1, 2, 3], [], [4, 5], [6, 7, 8, 9], [10]]

    with caplog.at_level(logging.WARNING, logger="memprune.perplexity"):
        selected = select_documents(token_documents, max_tokens=6)

    assert selected == [0, 2, 3]
    assert "Skipped 1 empty documents" in caplog.text
    assert select_documents(token_documents, max_tokens=100) == [0, 2, 3, 4]
