"""Seeded, order-independent sampling of fixed-length token windows from a document stream.

Each candidate window gets a priority from a keyed hash of the seed, the document's content digest
and the window's token offset. The `n` windows of smallest priority are kept in a bounded heap. The
choice depends only on what the windows contain, so the order of shards, the order of documents in
them and the size of the batches they are read in do not change the sample.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """A candidate sequence: `token_ids` starts at `token_offset` tokens into document `doc_id`."""

    priority: int
    content_key: str
    doc_id: str
    source: str
    token_offset: int
    token_ids: np.ndarray


def content_digest(text: str) -> str:
    """Return a hex digest that identifies a document by its text alone."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def window_priority(seed: int, content_key: str, token_offset: int) -> int:
    """Return the 64-bit sampling priority of a window; smaller is chosen first."""
    message = f"{seed}:{content_key}:{token_offset}".encode()
    return int.from_bytes(hashlib.blake2b(message, digest_size=8).digest(), "big")


class WindowReservoir:
    """Keep the `capacity` windows of smallest priority seen so far.

    A window whose (content, offset) key is already held is a duplicate of an identical document
    read earlier (the same text in two shards) and is counted in `duplicates`, not held twice.
    Copies of windows that were never held are not counted, because remembering every key would
    cost memory in proportion to the corpus.
    """

    def __init__(self, capacity: int):
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.candidates = 0
        self.duplicates = 0
        self._heap: list[tuple[int, str, int, Window]] = []
        self._held: set[tuple[str, int]] = set()

    def offer(self, window: Window) -> None:
        """Consider one window for the sample."""
        self.candidates += 1
        key = (window.content_key, window.token_offset)
        if key in self._held:
            self.duplicates += 1
            return
        if self.capacity == 0:
            return

        # heapq is a min-heap, so priorities are negated to keep the largest on top for eviction.
        entry = (-window.priority, window.content_key, window.token_offset, window)
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, entry)
            self._held.add(key)
        elif entry > self._heap[0]:
            evicted = heapq.heappushpop(self._heap, entry)
            self._held.discard((evicted[1], evicted[2]))
            self._held.add(key)

    def __len__(self) -> int:
        return len(self._heap)

    def windows(self) -> list[Window]:
        """Return the held windows from smallest to largest priority."""
        ordered = sorted(self._heap, key=lambda entry: (-entry[0], entry[1], entry[2]))
        return [entry[3] for entry in ordered]


def split_into_windows(token_ids: list[int], window_length: int) -> list[tuple[int, list[int]]]:
    """Cut a token sequence into disjoint windows of `window_length`, dropping the short remainder."""
    return [
        (offset, token_ids[offset : offset + window_length])
        for offset in range(0, len(token_ids) - window_length + 1, window_length)
    ]
