"""Drawing of non-finite values (a diverged pruned model's inf or NaN perplexity) without crashing.

A heavily pruned model can diverge, so its perplexity overflows to inf or becomes NaN, and a
membership-inference AUC over NaN losses is NaN. Such values cannot sit on a data axis, and
dropping them would hide the most pruned points. Instead the axis gets a shaded strip past its
upper end, and each non-finite value is drawn there as a triangle pointing off the axis: filled for
inf, open for NaN. The strip is labelled with the kinds it contains, and callers report the counts.
"""

import logging
from dataclasses import dataclass

import numpy as np
from matplotlib import transforms
from matplotlib.axes import Axes

from memprune.plots.style import strategy_style

logger = logging.getLogger(__name__)

#: Share of the axis length taken by the strip of clipped values.
STRIP_FRACTION = 0.12

# Padding around the finite data, as a share of its span in axis coordinates (log10 on log axes).
_PADDING_FRACTION = 0.05

# Horizontal distance between markers of different strategies at the same position, in points.
_DODGE_SPACING_PT = 3.5

_STRIP_COLOR = "#EBEBEB"


@dataclass(frozen=True)
class NonFiniteCounts:
    """Numbers of infinite and NaN values among those drawn."""

    n_inf: int = 0
    n_nan: int = 0

    @property
    def total(self) -> int:
        """All non-finite values, inf and NaN together."""
        return self.n_inf + self.n_nan

    def __add__(self, other: "NonFiniteCounts") -> "NonFiniteCounts":
        return NonFiniteCounts(self.n_inf + other.n_inf, self.n_nan + other.n_nan)


def count_nonfinite(values: np.ndarray) -> NonFiniteCounts:
    """Count the infinite (either sign) and NaN entries of `values`."""
    values = np.asarray(values, dtype=float)
    return NonFiniteCounts(n_inf=int(np.isinf(values).sum()), n_nan=int(np.isnan(values).sum()))


def _to_axis(values: np.ndarray, scale: str) -> np.ndarray:
    return np.log10(values) if scale == "log" else values


def _from_axis(values: np.ndarray, scale: str) -> np.ndarray:
    return np.power(10.0, values) if scale == "log" else values


def padded_limits(
    values: np.ndarray, scale: str, default: tuple[float, float], include: tuple[float, ...] = ()
) -> tuple[float, float]:
    """Return axis limits around the finite `values` and `include`, padded on both sides.

    Args:
        values: data values; inf and NaN are ignored.
        scale: "linear" or "log" (the padding is then a share of the span in decades).
        default: the limits when no finite value is left.
        include: values the limits must also cover, such as a chance level.
    """
    values = np.asarray(values, dtype=float)
    finite = np.concatenate([values[np.isfinite(values)], np.asarray(include, dtype=float)])
    if finite.size == 0:
        return default

    low, high = _to_axis(np.array([finite.min(), finite.max()]), scale)
    span = high - low
    if span == 0:
        # A single value: give it a visible range of one unit (one decade on a log axis) around it.
        span = 1.0 if scale == "log" or low == 0 else abs(low)
        low, high = low - span / 2, high + span / 2
    low, high = low - _PADDING_FRACTION * span, high + _PADDING_FRACTION * span
    return tuple(float(bound) for bound in _from_axis(np.array([low, high]), scale))


def reserve_clip_strip(ax: Axes, axis: str, limits: tuple[float, float], scale: str) -> float:
    """Extend an axis past `limits` by a shaded strip for clipped values and fix its limits.

    Args:
        ax: the axes to change.
        axis: "x" (strip at the right edge) or "y" (strip at the top).
        limits: the limits that hold the finite data.
        scale: the scale of that axis, "linear" or "log".

    Returns:
        The data coordinate of the middle of the strip, where clipped markers go.
    """
    low, high = _to_axis(np.asarray(limits, dtype=float), scale)
    # Grow the axis so the strip takes STRIP_FRACTION of the final length.
    strip_length = (high - low) * STRIP_FRACTION / (1.0 - STRIP_FRACTION)
    top = high + strip_length
    strip_start, strip_middle, strip_end = _from_axis(np.array([high, high + strip_length / 2, top]), scale)

    if axis == "y":
        ax.set_ylim(limits[0], strip_end)
        ax.axhspan(strip_start, strip_end, color=_STRIP_COLOR, linewidth=0, zorder=0, label="_clip strip")
    else:
        ax.set_xlim(limits[0], strip_end)
        ax.axvspan(strip_start, strip_end, color=_STRIP_COLOR, linewidth=0, zorder=0, label="_clip strip")
    return float(strip_middle)


@dataclass(frozen=True)
class ClipSeries:
    """One strategy's values on the clipped axis and their coordinates along the other axis."""

    strategy: str
    positions: np.ndarray
    values: np.ndarray


def draw_clipped_markers(
    ax: Axes, axis: str, strip_middle: float, series: list[ClipSeries], dodge: str
) -> NonFiniteCounts:
    """Draw every non-finite value of `series` in the clip strip and return their counts.

    Markers point off the axis ("^" in a top strip, ">" in a right strip), in the strategy's colour,
    filled for inf and open for NaN. Markers that would overlap are set side by side, a few
    points apart.

    Args:
        ax: the axes, whose strip was made by `reserve_clip_strip`.
        axis: the axis of the values: "y" (strip at the top) or "x" (at the right edge).
        strip_middle: the value `reserve_clip_strip` returned.
        series: the data of each strategy drawn, in legend order.
        dodge: "position" sets markers that share a position side by side, which suits discrete
            positions such as sparsity. "series" gives each strategy x kind its own column
            across the strip, which suits continuous positions such as a rate, where near
            values would overlap.
    """
    entries = []
    for order, item in enumerate(series):
        values = np.asarray(item.values, dtype=float)
        positions = np.asarray(item.positions, dtype=float)
        for position, value in zip(positions, values):
            if not np.isfinite(value):
                kind = "nan" if np.isnan(value) else "inf"
                entries.append((order, kind, float(position), item.strategy))

    if dodge == "series":
        columns = sorted({(order, kind) for order, kind, _, _ in entries})
        slots = {entry: (columns.index(entry[:2]), len(columns)) for entry in entries}
    else:
        slots = {}
        for position in {entry[2] for entry in entries}:
            group = sorted(entry for entry in entries if entry[2] == position)
            slots.update({entry: (index, len(group)) for index, entry in enumerate(group)})

    marker = "^" if axis == "y" else ">"
    for entry in entries:
        _, kind, position, strategy = entry
        slot, n_slots = slots[entry]
        offset_pt = (slot - (n_slots - 1) / 2) * _DODGE_SPACING_PT
        transform = transforms.offset_copy(ax.transData, fig=ax.figure, x=offset_pt, y=0.0, units="points")
        color = strategy_style(strategy).color
        x, y = (position, strip_middle) if axis == "y" else (strip_middle, position)
        ax.plot(
            [x],
            [y],
            linestyle="none",
            marker=marker,
            markersize=4.5,
            markeredgecolor=color,
            markerfacecolor=color if kind == "inf" else "white",
            markeredgewidth=0.9,
            transform=transform,
            clip_on=False,
            zorder=4,
            label=f"_clipped {kind}: {strategy}",
        )

    counts = NonFiniteCounts()
    for item in series:
        counts = counts + count_nonfinite(item.values)
    return counts


def label_clip_strip(ax: Axes, axis: str, counts: NonFiniteCounts, quantity: str) -> None:
    """Write inside the clip strip which kinds of non-finite `quantity` it contains."""
    # The x strip's text is turned 90 degrees anticlockwise, so its down-pointing triangles show
    # pointing right, like the markers there.
    filled, hollow = ("\u25b2", "\u25b3") if axis == "y" else ("\u25bc", "\u25bd")
    parts = []
    if counts.n_inf:
        parts.append(f"{filled} inf")
    if counts.n_nan:
        parts.append(f"{hollow} NaN")
    text = f"{quantity} " + ", ".join(parts)

    if axis == "y":
        ax.text(0.01, 1.0 - STRIP_FRACTION / 2, text, transform=ax.transAxes, ha="left", va="center", fontsize=7)
    else:
        ax.text(
            1.0 - STRIP_FRACTION / 2,
            0.98,
            text,
            transform=ax.transAxes,
            ha="center",
            va="top",
            rotation=90,
            fontsize=7,
        )
