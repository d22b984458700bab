"""Tests of the teacher-forced memorization scorer against greedy generation and full-logit computation."""

import copy
import logging
import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from memprune.scoring import (
    GENERATE_SCORES_SCHEMA,
    SCORES_SCHEMA,
    compare_modes,
    score_memorization,
    score_memorization_generate,
    stack_input_ids,
    suffix_logits,
)

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB_SIZE = 300
SEQUENCE_LENGTH = 40
SUFFIX_LENGTH = 10
PREFIX_LENGTHS = [1, 5, 10, 30]
END_OF_TEXT = 2  # GPTNeoXConfig's default eos_token_id


def tiny_config() -> GPTNeoXConfig:
    return GPTNeoXConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=128,
    )


@pytest.fixture(scope="module")
def random_model() -> GPTNeoXForCausalLM:
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(tiny_config()).eval()


@pytest.fixture(scope="module")
def training_sequences() -> np.ndarray:
    """Eight random 40-token sequences, with the end-of-text token inside some suffixes."""
    sequences = np.random.default_rng(1).integers(3, VOCAB_SIZE, size=(8, SEQUENCE_LENGTH))
    sequences[0, -5] = END_OF_TEXT
    sequences[3, -1] = END_OF_TEXT
    sequences[5, -SUFFIX_LENGTH] = END_OF_TEXT
    return sequences


@pytest.fixture(scope="module")
def overfit_model(training_sequences) -> GPTNeoXForCausalLM:
    """A tiny GPT-NeoX trained until it reproduces its eight training sequences."""
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(tiny_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = torch.from_numpy(training_sequences)

    model.train()
    for _ in range(200):
        loss = model(input_ids=data, labels=data).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def scored_samples(training_sequences) -> np.ndarray:
    """Training sequences, copies whose suffix is altered part-way (partial matches), and random rows."""
    rng = np.random.default_rng(2)
    altered = training_sequences.copy()
    for row, position in enumerate([2, 5, 7, 9, 0, 4, 6, 8]):
        column = SEQUENCE_LENGTH - SUFFIX_LENGTH + position
        altered[row, column] = (altered[row, column] + 1) % VOCAB_SIZE
    unseen = rng.integers(0, VOCAB_SIZE, size=(6, SEQUENCE_LENGTH))
    return np.concatenate([training_sequences, altered, unseen])


def naive_scores(model, samples: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Score with the full logits of model(window).logits, the plain definition of every column."""
    window = torch.from_numpy(samples[:, SEQUENCE_LENGTH - SUFFIX_LENGTH - k : SEQUENCE_LENGTH - 1])
    targets = torch.from_numpy(samples[:, -SUFFIX_LENGTH:])
    with torch.no_grad():
        logits = model(window).logits[:, k - 1 :].float()
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    matches = logits.argmax(dim=-1) == targets
    match_length = [int(np.argmin(np.append(row, False))) for row in matches.numpy()]
    top2 = logits.topk(2, dim=-1).values
    return {
        "exact_match": matches.all(dim=-1).numpy(),
        "match_length": np.array(match_length),
        "token_accuracy": matches.float().mean(dim=-1).numpy(),
        "suffix_loss": (-logprobs.mean(dim=-1)).numpy(),
        "suffix_logprobs": logprobs.numpy(),
        "min_top2_gap": (top2[..., 0] - top2[..., 1]).min(dim=-1).values.numpy(),
    }


def test_scorer_equals_full_logits(overfit_model, scored_samples):
    sample_ids = range(len(scored_samples))
    table = pl.from_arrow(
        score_memorization(overfit_model, scored_samples, sample_ids, "member", PREFIX_LENGTHS, SUFFIX_LENGTH, 5)
    )
    for k in PREFIX_LENGTHS:
        rows = table.filter(pl.col("k") == k)
        expected = naive_scores(overfit_model, scored_samples, k)
        assert rows["exact_match"].to_list() == expected["exact_match"].tolist()
        assert rows["match_length"].to_list() == expected["match_length"].tolist()
        np.testing.assert_allclose(rows["token_accuracy"].to_numpy(), expected["token_accuracy"], atol=1e-6)
        np.testing.assert_allclose(rows["suffix_loss"].to_numpy(), expected["suffix_loss"], atol=1e-5)
        np.testing.assert_allclose(np.array(rows["suffix_logprobs"].to_list()), expected["suffix_logprobs"], atol=1e-5)
        np.testing.assert_allclose(rows["min_top2_gap"].to_numpy(), expected["min_top2_gap"], atol=1e-5)


def test_scorer_covers_full_and_partial_matches(overfit_model, scored_samples):
    table = pl.from_arrow(
        score_memorization(overfit_model, scored_samples, range(len(scored_samples)), "member", [30], SUFFIX_LENGTH, 8)
    )
    match_lengths = table["match_length"].to_list()

    assert table["exact_match"][:8].to_list() == [True] * 8
    assert match_lengths[8:16] == [2, 5, 7, 9, 0, 4, 6, 8]
    assert table["exact_match"][8:].sum() == 0


@pytest.mark.parametrize("use_cache", [True, False])
def test_scorer_agrees_with_generate_overfit(overfit_model, scored_samples, use_cache):
    sample_ids = list(range(len(scored_samples)))
    fast = score_memorization(overfit_model, scored_samples, sample_ids, "member", PREFIX_LENGTHS, SUFFIX_LENGTH, 4)
    reference = score_memorization_generate(
        overfit_model, scored_samples, sample_ids, "member", PREFIX_LENGTHS, SUFFIX_LENGTH, 4, use_cache=use_cache
    )
    report = compare_modes(fast, reference)

    assert report["n_rows"] == len(sample_ids) * len(PREFIX_LENGTHS)
    assert report["n_unexplained"] == 0
    assert report["agree"]
    assert pl.from_arrow(fast)["exact_match"].sum() >= 8


def test_scorer_agrees_with_generate_random(random_model):
    samples = np.random.default_rng(3).integers(0, VOCAB_SIZE, size=(12, SEQUENCE_LENGTH))
    fast = score_memorization(random_model, samples, range(12), "nonmember", PREFIX_LENGTHS, SUFFIX_LENGTH, 5)
    reference = score_memorization_generate(
        random_model, samples, range(12), "nonmember", PREFIX_LENGTHS, SUFFIX_LENGTH, 5
    )
    report = compare_modes(fast, reference)

    assert report["n_rows"] == 12 * len(PREFIX_LENGTHS)
    assert report["n_unexplained"] == 0
    for disagreement in report["disagreements"]:
        assert disagreement["explained_by_tie"]


def test_generate_reproduces_end_of_text_suffix(overfit_model, training_sequences):
    reference = pl.from_arrow(
        score_memorization_generate(overfit_model, training_sequences, range(8), "member", [30], SUFFIX_LENGTH, 8)
    )

    assert reference["exact_match"].to_list() == [True] * 8
    assert reference["generated_token_accuracy"].to_list() == [1.0] * 8


def test_generate_token_accuracy_counts_all_positions(overfit_model, scored_samples):
    reference = pl.from_arrow(
        score_memorization_generate(overfit_model, scored_samples[8:16], range(8), "member", [30], SUFFIX_LENGTH, 8)
    )

    # One altered token per suffix: the model still generates the memorized suffix, so 9 of 10 match.
    assert reference["match_length"].to_list() == [2, 5, 7, 9, 0, 4, 6, 8]
    np.testing.assert_allclose(reference["generated_token_accuracy"].to_numpy(), 0.9, atol=1e-6)
    assert reference["token_accuracy"].null_count() == 8
    assert reference["suffix_logprobs"].null_count() == 8


def test_batch_size_one_and_seven_agree(overfit_model, scored_samples):
    sample_ids = range(len(scored_samples))
    single = pl.from_arrow(
        score_memorization(overfit_model, scored_samples, sample_ids, "member", PREFIX_LENGTHS, SUFFIX_LENGTH, 1)
    )
    batched = pl.from_arrow(
        score_memorization(overfit_model, scored_samples, sample_ids, "member", PREFIX_LENGTHS, SUFFIX_LENGTH, 7)
    )

    assert single["exact_match"].to_list() == batched["exact_match"].to_list()
    assert single["match_length"].to_list() == batched["match_length"].to_list()
    np.testing.assert_allclose(single["suffix_loss"].to_numpy(), batched["suffix_loss"].to_numpy(), atol=1e-6)


def test_output_schema_and_row_order(random_model):
    samples = np.random.default_rng(4).integers(0, VOCAB_SIZE, size=(3, SEQUENCE_LENGTH))
    fast = score_memorization(random_model, samples, [10, 20, 30], "member", [5, 30], SUFFIX_LENGTH, 2)
    reference = score_memorization_generate(random_model, samples, [10, 20, 30], "member", [5, 30], SUFFIX_LENGTH, 2)

    assert fast.schema == SCORES_SCHEMA
    assert reference.schema == GENERATE_SCORES_SCHEMA
    assert fast.column("sample_id").to_pylist() == [10, 20, 30, 10, 20, 30]
    assert fast.column("k").to_pylist() == [5, 5, 5, 30, 30, 30]
    assert set(fast.column("split").to_pylist()) == {"member"}
    assert [len(row) for row in fast.column("suffix_logprobs").to_pylist()] == [SUFFIX_LENGTH] * 6


def test_prefix_longer_than_stored_raises(random_model):
    samples = np.zeros((2, SEQUENCE_LENGTH), dtype=np.int64)
    with pytest.raises(ValueError, match=r"k=31 .*L - S = 40 - 10 = 30"):
        score_memorization(random_model, samples, [0, 1], "member", [5, 31], SUFFIX_LENGTH, 2)
    with pytest.raises(ValueError, match=r"k=31"):
        score_memorization_generate(random_model, samples, [0, 1], "member", [31], SUFFIX_LENGTH, 2)


def test_ragged_input_raises(random_model):
    ragged = [[1] * SEQUENCE_LENGTH, [1] * (SEQUENCE_LENGTH - 1)]
    with pytest.raises(ValueError, match="rectangular"):
        score_memorization(random_model, ragged, [0, 1], "member", [5], SUFFIX_LENGTH, 2)
    with pytest.raises(ValueError, match="row 1 has 39 tokens"):
        stack_input_ids(ragged, source="members.parquet")


def test_invalid_arguments_raise(random_model):
    samples = np.zeros((2, SEQUENCE_LENGTH), dtype=np.int64)
    with pytest.raises(ValueError, match="split"):
        score_memorization(random_model, samples, [0, 1], "train", [5], SUFFIX_LENGTH, 2)
    with pytest.raises(ValueError, match="duplicate"):
        score_memorization(random_model, samples, [4, 4], "member", [5], SUFFIX_LENGTH, 2)
    with pytest.raises(ValueError, match="k=0"):
        score_memorization(random_model, samples, [0, 1], "member", [0], SUFFIX_LENGTH, 2)
    with pytest.raises(ValueError, match=r"outside \[0, 300\)"):
        score_memorization(random_model, samples + 300, [0, 1], "member", [5], SUFFIX_LENGTH, 2)


def test_nan_weight_keeps_and_counts_rows(random_model, caplog):
    diverged = copy.deepcopy(random_model)
    with torch.no_grad():
        diverged.gpt_neox.layers[1].mlp.dense_4h_to_h.weight[0, 0] = math.nan
    samples = np.random.default_rng(5).integers(0, VOCAB_SIZE, size=(5, SEQUENCE_LENGTH))

    with caplog.at_level(logging.WARNING, logger="memprune.scoring"):
        table = pl.from_arrow(score_memorization(diverged, samples, range(5), "member", [5, 30], SUFFIX_LENGTH, 2))

    assert table.height == 10
    assert table["suffix_loss"].is_nan().sum() == 10
    assert "5 of 5 member samples at k=5 have a non-finite suffix_loss" in caplog.text
    assert "5 of 5 member samples at k=30 have a non-finite suffix_loss" in caplog.text


class GPTNeoXWithoutLogitsToKeep(GPTNeoXForCausalLM):
    """GPT-NeoX whose forward has no logits_to_keep argument, like older causal LM classes."""

    def forward(self, input_ids=None, attention_mask=None, use_cache=None):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)


def test_suffix_logits_without_logits_to_keep(random_model):
    plain = GPTNeoXWithoutLogitsToKeep(tiny_config()).eval()
    plain.load_state_dict(random_model.state_dict())
    window = torch.from_numpy(np.random.default_rng(6).integers(0, VOCAB_SIZE, size=(3, 20)))

    with torch.no_grad():
        expected = random_model(window).logits[:, -7:]
        fallback = suffix_logits(plain, window, 7)
        kept = suffix_logits(random_model, window, 7)

    assert fallback.shape == (3, 7, VOCAB_SIZE)
    torch.testing.assert_close(fallback, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(kept, expected, atol=1e-5, rtol=0)


def comparison_tables(fast_gap: float) -> tuple[pa.Table, pa.Table]:
    fast = pl.DataFrame(
        {
            "sample_id": [1, 2],
            "split": ["member", "member"],
            "k": [5, 5],
            "exact_match": [True, False],
            "match_length": [10, 3],
            "min_top2_gap": [2.0, fast_gap],
        }
    )
    reference = fast.with_columns(
        pl.Series("exact_match", [True, True]),
        pl.Series("match_length", [10, 10]),
        pl.Series("min_top2_gap", [2.0, 1.0]),
    )
    return fast.to_arrow(), reference.to_arrow()


def test_compare_modes_flags_unexplained_disagreement():
    fast, reference = comparison_tables(fast_gap=0.5)
    report = compare_modes(fast, reference)

    assert report["n_exact_match_disagreements"] == 1
    assert report["n_match_length_disagreements"] == 1
    assert report["n_unexplained"] == 1
    assert report["disagreements"][0]["sample_id"] == 2
    assert not report["agree"]


def test_compare_modes_explains_near_tie():
    fast, reference = comparison_tables(fast_gap=5e-5)
    report = compare_modes(fast, reference, tie_gap=1e-4)

    assert report["n_disagreements"] == 1
    assert report["n_explained_by_tie"] == 1
    assert report["agree"]


def test_compare_modes_counts_missing_rows():
    fast, reference = comparison_tables(fast_gap=0.5)
    report = compare_modes(fast, reference.slice(0, 1))

    assert report["n_missing_in_reference"] == 1
    assert report["n_missing_in_fast"] == 0
    assert not report["agree"]


def test_empty_input_returns_empty_table(random_model):
    empty = np.zeros((0, SEQUENCE_LENGTH), dtype=np.int64)

    fast = score_memorization(random_model, empty, [], "nonmember", [5], SUFFIX_LENGTH, 2)
    reference = score_memorization_generate(random_model, empty, [], "nonmember", [5], SUFFIX_LENGTH, 2)

    assert fast.num_rows == 0
    assert fast.schema == SCORES_SCHEMA
    assert reference.num_rows == 0
    assert reference.schema == GENERATE_SCORES_SCHEMA
