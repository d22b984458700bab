"""Panel grids and figure sizes that keep every figure readable at a paper's column width."""

import math

from memprune.plots.style import DOUBLE_COLUMN_WIDTH_IN, SINGLE_COLUMN_WIDTH_IN

#: Height of one row of panels, in inches.
PANEL_HEIGHT_IN = 1.9

#: Extra height for the legend above the panels, in inches per legend row.
LEGEND_ROW_HEIGHT_IN = 0.16


def panel_grid(n_panels: int) -> tuple[int, int]:
    """Return (rows, columns) for `n_panels`: one row up to three, 2 x 2 for four, else rows of three."""
    if n_panels < 1:
        raise ValueError(f"a figure needs at least one panel, got n_panels={n_panels}")
    if n_panels <= 3:
        return 1, n_panels
    if n_panels == 4:
        return 2, 2
    return math.ceil(n_panels / 3), 3


def figure_size(n_rows: int, n_columns: int, n_legend_entries: int, legend_columns: int) -> tuple[float, float]:
    """Return (width, height) in inches: one column wide for a single panel, the text width otherwise."""
    width = SINGLE_COLUMN_WIDTH_IN if n_columns == 1 else DOUBLE_COLUMN_WIDTH_IN
    legend_rows = math.ceil(n_legend_entries / legend_columns)
    height = n_rows * PANEL_HEIGHT_IN + 0.15 + legend_rows * LEGEND_ROW_HEIGHT_IN
    return width, height
