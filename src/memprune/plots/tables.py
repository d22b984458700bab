"""Checks and row selection for the tables the figures read.

The summary table has one row per model x strategy x sparsity x prefix length k. The duplication
table adds a `duplicates` column and has one row per model x strategy x sparsity x k x duplicates.
Every figure checks its input here first, so a malformed table fails with an error that names the
table, the column and the bad value instead of producing a misleading figure.
"""

import logging
import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from memprune.plots.style import DENSE_STRATEGY

logger = logging.getLogger(__name__)

SUMMARY_KEY = ("model", "strategy", "sparsity", "k")
DUPLICATION_KEY = ("model", "strategy", "sparsity", "k", "duplicates")
RATE_COLUMNS = ("extraction_rate", "extraction_rate_low", "extraction_rate_high")

# Slack for interval bounds that went through float rounding or a CSV round trip.
_RATE_TOLERANCE = 1e-9


class PlotInputError(ValueError):
    """Error for a table that lacks columns, contains invalid values or has no rows to draw."""


def _describe_row(row: dict, key: Sequence[str]) -> str:
    return ", ".join(f"{column}={row[column]!r}" for column in key if column in row)


def require_columns(table: pl.DataFrame, columns: Sequence[str], table_name: str) -> None:
    """Raise PlotInputError naming every column of `columns` that `table` lacks."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise PlotInputError(
            f"the {table_name} table is missing column(s) {missing}; it has {sorted(table.columns)}"
        )


def _check_integer_column(table: pl.DataFrame, column: str, low: int, high: int | None, table_name: str) -> None:
    dtype = table.schema[column]
    if not dtype.is_integer():
        raise PlotInputError(
            f"column {column!r} of the {table_name} table must hold integers, but has dtype {dtype}"
        )

    values = table.get_column(column)
    if values.null_count():
        raise PlotInputError(f"column {column!r} of the {table_name} table has {values.null_count()} null value(s)")

    if high is None:
        outside = table.filter(pl.col(column) < low)
    else:
        outside = table.filter(~pl.col(column).is_between(low, high))
    if outside.height:
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        row = outside.row(0, named=True)
        raise PlotInputError(
            f"{column} must be {allowed} in the {table_name} table, got {row[column]!r} "
            f"in {outside.height} row(s), the first at {_describe_row(row, DUPLICATION_KEY)}"
        )


def _check_rates(table: pl.DataFrame, key: Sequence[str], table_name: str) -> None:
    rates = {column: table.get_column(column).cast(pl.Float64).to_numpy() for column in RATE_COLUMNS}
    low = rates["extraction_rate_low"]
    rate = rates["extraction_rate"]
    high = rates["extraction_rate_high"]

    with np.errstate(invalid="ignore"):
        valid = (
            np.isfinite(low)
            & np.isfinite(rate)
            & np.isfinite(high)
            & (low >= -_RATE_TOLERANCE)
            & (high <= 1.0 + _RATE_TOLERANCE)
            & (low <= rate + _RATE_TOLERANCE)
            & (rate <= high + _RATE_TOLERANCE)
        )
    if not valid.all():
        index = int(np.flatnonzero(~valid)[0])
        row = table.row(index, named=True)
        values = ", ".join(f"{column}={row[column]!r}" for column in RATE_COLUMNS)
        raise PlotInputError(
            f"the {table_name} table has {int((~valid).sum())} row(s) whose extraction rate and interval "
            f"are not finite with 0 <= low <= rate <= high <= 1; the first is {_describe_row(row, key)} "
            f"with {values}"
        )


def check_table(table: pl.DataFrame, table_name: str, columns: Sequence[str]) -> None:
    """Check a summary or duplication table before plotting it.

    Args:
        table: the table to check.
        table_name: "summary" or "duplication", used in error messages and to pick the row key.
        columns: the columns the caller reads, besides the key.

    Raises:
        PlotInputError: on an empty table, missing columns, non-integer or out-of-range sparsity,
            k or duplicates, a dense row at a sparsity other than 0, repeated keys, or extraction
            rates (where read) that are not finite proportions inside their interval.
    """
    key = DUPLICATION_KEY if table_name == "duplication" else SUMMARY_KEY
    require_columns(table, [*key, *columns], table_name)
    if table.height == 0:
        raise PlotInputError(f"the {table_name} table is empty, so there is nothing to plot")

    _check_integer_column(table, "sparsity", 0, 100, table_name)
    _check_integer_column(table, "k", 1, None, table_name)
    if "duplicates" in key:
        _check_integer_column(table, "duplicates", 1, None, table_name)

    dense_pruned = table.filter((pl.col("strategy") == DENSE_STRATEGY) & (pl.col("sparsity") != 0))
    if dense_pruned.height:
        row = dense_pruned.row(0, named=True)
        raise PlotInputError(
            f"the {table_name} table has {dense_pruned.height} '{DENSE_STRATEGY}' row(s) at a sparsity "
            f"other than 0, the first at {_describe_row(row, key)}; the unpruned baseline is sparsity 0 only"
        )

    repeated = table.filter(pl.struct(list(key)).is_duplicated())
    if repeated.height:
        row = repeated.row(0, named=True)
        raise PlotInputError(
            f"the {table_name} table has {repeated.height} rows sharing a key {list(key)}, "
            f"for example {_describe_row(row, key)}; each key must appear once"
        )

    if set(RATE_COLUMNS) & set(columns):
        _check_rates(table, key, table_name)


def select_model(table: pl.DataFrame, model: str | None, table_name: str) -> tuple[str, pl.DataFrame]:
    """Keep the rows of one model. With `model=None` the table must contain exactly one model."""
    models = sorted(table.get_column("model").unique().to_list())
    if model is None:
        if len(models) != 1:
            raise PlotInputError(
                f"the {table_name} table contains {len(models)} models {models}; pass model= to choose one"
            )
        model = models[0]

    selected = table.filter(pl.col("model") == model)
    if selected.height == 0:
        raise PlotInputError(f"model {model!r} not found in the {table_name} table, which contains {models}")
    return model, selected


def select_value(table: pl.DataFrame, column: str, value: int, table_name: str, model: str) -> pl.DataFrame:
    """Keep the rows where `column` equals `value`, or raise naming the values that do exist."""
    selected = table.filter(pl.col(column) == value)
    if selected.height == 0:
        available = sorted(table.get_column(column).unique().to_list())
        raise PlotInputError(
            f"no rows with {column}={value!r} for model {model!r} in the {table_name} table; "
            f"available {column} values: {available}"
        )
    return selected


def float_values(table: pl.DataFrame, column: str) -> np.ndarray:
    """Return a column as float64 with nulls as NaN, so missing values count as non-finite."""
    series = table.get_column(column).cast(pl.Float64)
    if series.null_count():
        logger.warning("column %s has %d null value(s); they are drawn and counted as NaN", column, series.null_count())
    return series.fill_null(math.nan).to_numpy()
