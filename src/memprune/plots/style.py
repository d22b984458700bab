"""Visual identity shared by every figure: strategy colours and markers, fonts and figure sizes.

Each strategy keeps one colour, marker and line style in every figure, so a reader who learns the
legend once can read the rest. The six preset strategies have fixed styles drawn from the Okabe-Ito
colour-blind-safe palette (random, the control, is grey). A user-defined strategy gets a style picked
from a separate palette by a SHA-256 digest of its name, so it is the same in every run and never
takes a preset's colour. The unpruned baseline (`dense`) is black.
"""

import contextlib
import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

#: Strategy name of the unpruned baseline (always at sparsity 0).
DENSE_STRATEGY = "dense"

#: Figure widths in inches: one column and the full text width of a two-column paper.
SINGLE_COLUMN_WIDTH_IN = 3.3
DOUBLE_COLUMN_WIDTH_IN = 6.8

#: Resolution of the PNG copies, in dots per inch.
PNG_DPI = 200

#: Smallest font size used anywhere in a figure, in points.
MIN_FONT_SIZE_PT = 7


@dataclass(frozen=True)
class StrategyStyle:
    """Drawing style of one strategy: a matplotlib colour, marker and line style."""

    color: str
    marker: str
    linestyle: str = "-"


DENSE_STYLE = StrategyStyle(color="#000000", marker="*", linestyle="--")

#: Fixed styles of the preset strategies, in legend order. The upward and right-pointing triangles
#: are left out because they mark clipped non-finite values.
PRESET_STYLES: dict[str, StrategyStyle] = {
    "layerwise_magnitude": StrategyStyle(color="#0072B2", marker="o"),
    "global_magnitude": StrategyStyle(color="#D55E00", marker="s"),
    "all_linear": StrategyStyle(color="#009E73", marker="D"),
    "attention_only": StrategyStyle(color="#CC79A7", marker="v"),
    "deeper_layers": StrategyStyle(color="#E69F00", marker="P"),
    "random": StrategyStyle(color="#7F7F7F", marker="X", linestyle="-."),
}

# Palettes for user-defined strategies, disjoint from the preset colours and markers.
_FALLBACK_COLORS = ("#56B4E9", "#8C564B", "#9467BD", "#17BECF", "#A6761D", "#BCBD22")
_FALLBACK_MARKERS = ("<", "h", "p", "d", "8", "H")

# Font sizes in points, none below MIN_FONT_SIZE_PT so the text stays legible at column width.
_RC_PARAMS = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "legend.frameon": False,
    "legend.handlelength": 2.2,
    # TrueType fonts keep the PDF text editable and searchable.
    "pdf.fonttype": 42,
    # A fixed salt makes the ids in SVG output the same on every run.
    "svg.hashsalt": "memprune",
    "savefig.dpi": PNG_DPI,
}


def strategy_style(strategy: str) -> StrategyStyle:
    """Look up the style of a strategy: fixed for `dense` and the presets, digest-based otherwise."""
    if strategy == DENSE_STRATEGY:
        return DENSE_STYLE
    if strategy in PRESET_STYLES:
        return PRESET_STYLES[strategy]

    # Two digest bytes pick colour and marker independently, so 36 combinations are available.
    digest = hashlib.sha256(strategy.encode("utf-8")).digest()
    color = _FALLBACK_COLORS[digest[0] % len(_FALLBACK_COLORS)]
    marker = _FALLBACK_MARKERS[digest[1] % len(_FALLBACK_MARKERS)]
    return StrategyStyle(color=color, marker=marker, linestyle=":")


def order_strategies(strategies: Iterable[str]) -> list[str]:
    """Sort strategy names for legends: presets in their fixed order, then others alphabetically.

    `dense` is left out because every figure draws it separately as the baseline.
    """
    names = set(strategies) - {DENSE_STRATEGY}
    presets = [name for name in PRESET_STYLES if name in names]
    others = sorted(names - set(PRESET_STYLES))
    return presets + others


def display_name(strategy: str) -> str:
    """Return the legend text of a strategy: its name with underscores as spaces."""
    return strategy.replace("_", " ")


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """Apply the figure fonts, sizes and output settings for the duration of a `with` block."""
    with matplotlib.rc_context(_RC_PARAMS):
        yield


def new_figure(width_in: float, height_in: float) -> Figure:
    """Create a figure with constrained layout, drawn by the Agg canvas and never shown on screen.

    The figure is not registered with pyplot, so it is freed when the caller drops it. Call this
    inside `figure_style()` so the fonts and sizes apply.
    """
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure
