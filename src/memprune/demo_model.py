"""Train the offline demo: a byte-level BPE tokenizer and a tiny GPT-NeoX on the mini-Pile.

The model has Pythia's architecture (GPT-NeoX with parallel residual and rotary embeddings) at a size
that trains in minutes on two CPU cores. It is trained on the member windows only, each repeated its
`duplicates` count per epoch, so every member is training data by construction and memorization can
be read against duplication, as Carlini et al. (2023) did for real models.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

END_OF_TEXT = "<|endoftext|>"


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """Train a byte-level BPE tokenizer and wrap it as a `PreTrainedTokenizerFast`.

    Like Pythia's tokenizer, `<|endoftext|>` is the only special token and serves as BOS, EOS and
    UNK, and encoding adds no special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        model_max_length=None,
        clean_up_tokenization_spaces=False,
    )


def gpt_neox_config(architecture: dict, vocab_size: int, eos_token_id: int):
    """Return a `GPTNeoXConfig` with Pythia's architectural choices at the configured size."""
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=architecture["hidden_size"],
        num_hidden_layers=architecture["num_layers"],
        num_attention_heads=architecture["num_heads"],
        intermediate_size=architecture["intermediate_size"],
        max_position_embeddings=architecture["context_length"],
        rotary_pct=architecture.get("rotary_pct", 0.25),
        use_parallel_residual=True,
        tie_word_embeddings=False,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )


def build_gpt_neox(architecture: dict, vocab_size: int, eos_token_id: int):
    """Build a randomly initialised `GPTNeoXForCausalLM` (parallel residual, rotary embeddings)."""
    from transformers import GPTNeoXForCausalLM

    return GPTNeoXForCausalLM(gpt_neox_config(architecture, vocab_size, eos_token_id))


def expand_by_duplicates(input_ids: np.ndarray, duplicates: Sequence[int]) -> np.ndarray:
    """Return the indices of one training epoch: sample i appears `duplicates[i]` times."""
    counts = np.asarray(duplicates, dtype=np.int64)
    if counts.shape[0] != input_ids.shape[0]:
        raise ValueError(f"{counts.shape[0]} duplicate counts for {input_ids.shape[0]} samples")
    if (counts < 1).any():
        raise ValueError(f"duplicate counts must be >= 1, got minimum {counts.min()}")
    return np.repeat(np.arange(input_ids.shape[0]), counts)


def train_causal_lm(
    model,
    input_ids: np.ndarray,
    duplicates: Sequence[int],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    warmup_steps: int,
    weight_decay: float,
    seed: int,
) -> list[dict]:
    """Train `model` on equal-length windows with AdamW and a warmup plus cosine schedule.

    Returns one record per logged step (`step`, `epoch`, `loss`, `tokens_per_second`). The order of
    samples in each epoch comes from a generator seeded with `seed`, so training is repeatable.
    """
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = torch.as_tensor(input_ids, dtype=torch.long)
    epoch_indices = torch.as_tensor(expand_by_duplicates(input_ids, duplicates))
    steps_per_epoch = math.ceil(len(epoch_indices) / batch_size)
    total_steps = epochs * steps_per_epoch

    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay, betas=(0.9, 0.95))

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    history: list[dict] = []
    step = 0
    tokens_since_log = 0
    last_log = time.perf_counter()
    log.info(
        "training %d parameters on %d windows (%d per epoch with duplicates) for %d epochs, %d steps",
        sum(parameter.numel() for parameter in model.parameters()),
        input_ids.shape[0],
        len(epoch_indices),
        epochs,
        total_steps,
    )

    progress = tqdm(total=total_steps, desc="training", unit="step", mininterval=5.0)
    for epoch in range(epochs):
        order = epoch_indices[torch.randperm(len(epoch_indices), generator=generator)]
        for start in range(0, len(order), batch_size):
            batch = data[order[start : start + batch_size]]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            step += 1
            tokens_since_log += batch.numel()
            progress.update(1)
            if step % 50 == 0 or step == total_steps:
                elapsed = time.perf_counter() - last_log
                record = {
                    "step": step,
                    "epoch": epoch,
                    "loss": loss.item(),
                    "learning_rate": scheduler.get_last_lr()[0],
                    "tokens_per_second": tokens_since_log / max(elapsed, 1e-9),
                }
                history.append(record)
                log.info(
                    "step %d/%d epoch %d loss %.4f lr %.2e %.0f tokens/s",
                    step, total_steps, epoch, record["loss"], record["learning_rate"], record["tokens_per_second"],
                )
                tokens_since_log = 0
                last_log = time.perf_counter()
    progress.close()
    model.eval()
    return history


def teacher_forced_exact_match(model, input_ids: np.ndarray, prefix_length: int, suffix_length: int) -> np.ndarray:
    """Return, per window, whether the argmax continuation of the prefix reproduces the suffix.

    A quick check used by the training log; the scoring stage computes the full metrics.
    """
    import torch

    window = input_ids[:, input_ids.shape[1] - suffix_length - prefix_length :]
    with torch.inference_mode():
        logits = model(input_ids=torch.as_tensor(window[:, :-1], dtype=torch.long)).logits
    predicted = logits[:, prefix_length - 1 :, :].argmax(-1).numpy()
    return (predicted == window[:, prefix_length:]).all(axis=1)


def save_model_folder(model, tokenizer, out_dir: str | Path) -> None:
    """Save model and tokenizer as a `save_pretrained` folder that loads like a hub checkpoint."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
