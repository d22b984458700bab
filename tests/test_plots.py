"""Tests of the figures module against a realistic synthetic summary, rendered to real files."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from matplotlib.text import Text

from memprune.plots import (
    FIGURE_NAMES,
    PRESET_STYLES,
    PlotInputError,
    make_all_figures,
    plot_extraction_vs_duplicates,
    plot_extraction_vs_perplexity,
    plot_extraction_vs_prefix_length,
    plot_extraction_vs_sparsity,
    plot_mia_auc_vs_sparsity,
    plot_perplexity_vs_sparsity,
    report_labels,
    save_figure,
    strategy_style,
)
from memprune.plots.style import MIN_FONT_SIZE_PT, PNG_DPI
from memprune.stats import wilson_interval

MODEL = "demo-neox"
KS = (16, 32, 64, 128)
SPARSITIES = tuple(range(10, 100, 10))
N_MEMBERS = 2000
DUPLICATES = (1, 2, 4, 8, 16, 32)

DENSE_RATE_BY_K = {16: 0.04, 32: 0.09, 64: 0.16, 128: 0.24}
DENSE_PERPLEXITY = 25.0
DENSE_AUC = {"loss": 0.66, "zlib": 0.68, "min_k": 0.67}

# Per strategy: the sparsity (%) at which extraction halves, and how fast perplexity grows.
STRATEGY_SHAPES = {
    "layerwise_magnitude": (55, 4.0),
    "global_magnitude": (45, 5.0),
    "all_linear": (40, 6.0),
    "attention_only": (75, 2.0),
    "deeper_layers": (65, 3.0),
    "random": (30, 9.0),
}

# Diverged pruned models: three overflowed perplexities and one NaN.
NONFINITE_PERPLEXITY = {
    ("global_magnitude", 90): math.inf,
    ("all_linear", 90): math.inf,
    ("random", 80): math.inf,
    ("random", 90): math.nan,
}


def _rate_row(n: int, rate: float) -> dict:
    n_extracted = round(rate * n)
    low, high = wilson_interval(n_extracted, n)
    return {
        "n_extracted": n_extracted,
        "extraction_rate": n_extracted / n,
        "extraction_rate_low": low,
        "extraction_rate_high": high,
    }


def _summary_row(strategy: str, sparsity: int, k: int, retained: float, perplexity: float) -> dict:
    rate = DENSE_RATE_BY_K[k] * retained
    diverged = math.isnan(perplexity)
    row = {
        "model": MODEL,
        "strategy": strategy,
        "sparsity": sparsity,
        "k": k,
        "n_members": N_MEMBERS,
        **_rate_row(N_MEMBERS, rate),
        "mean_match_length": 50 * rate + 3.0,
        "mean_token_accuracy": 0.3 + 0.6 * rate,
        "nonmember_extraction_rate": 0.0,
        "token_perplexity": perplexity,
        "word_perplexity": perplexity * 1.6,
        "bits_per_byte": math.log2(perplexity) / 4.2 if perplexity > 0 else perplexity,
        "n_nan_loss": 4000 if diverged else 0,
    }
    for score, auc in DENSE_AUC.items():
        value = math.nan if diverged else 0.5 + (auc - 0.5) * retained
        row[f"mia_{score}_auc"] = value
        row[f"mia_{score}_tpr_at_1fpr"] = math.nan if diverged else 0.01 + 0.1 * retained
    return row


def _retained_share(strategy: str, sparsity: int) -> float:
    half_sparsity, _ = STRATEGY_SHAPES[strategy]
    return 1.0 / (1.0 + (sparsity / half_sparsity) ** 4)


def _perplexity(strategy: str, sparsity: int) -> float:
    _, growth = STRATEGY_SHAPES[strategy]
    default = DENSE_PERPLEXITY * math.exp(growth * (sparsity / 100) ** 3)
    return NONFINITE_PERPLEXITY.get((strategy, sparsity), default)


def make_summary() -> pl.DataFrame:
    """Build a summary table: six strategies at sparsities 10..90 plus dense, at four k."""
    rows = []
    for k in KS:
        rows.append(_summary_row("dense", 0, k, 1.0, DENSE_PERPLEXITY))
        for strategy in STRATEGY_SHAPES:
            for sparsity in SPARSITIES:
                retained = _retained_share(strategy, sparsity)
                rows.append(_summary_row(strategy, sparsity, k, retained, _perplexity(strategy, sparsity)))
    return pl.DataFrame(rows)


def make_duplication() -> pl.DataFrame:
    """Build a duplication table: extraction grows with duplicates, fewer members in larger bins."""
    rows = []
    for k in KS:
        grid = [("dense", 0)] + [(strategy, sparsity) for strategy in STRATEGY_SHAPES for sparsity in SPARSITIES]
        for strategy, sparsity in grid:
            retained = 1.0 if strategy == "dense" else _retained_share(strategy, sparsity)
            for duplicates in DUPLICATES:
                n = 1600 // duplicates
                rate = min(0.95, DENSE_RATE_BY_K[k] * duplicates**0.8) * retained
                key = {"model": MODEL, "strategy": strategy, "sparsity": sparsity, "k": k, "duplicates": duplicates}
                rows.append({**key, "n": n, **_rate_row(n, rate)})
    return pl.DataFrame(rows)


STRATEGIES = tuple(STRATEGY_SHAPES)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHOSEN_K = 64
CHOSEN_SPARSITY = 50


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.fixture(scope="module")
def summary() -> pl.DataFrame:
    return make_summary()


@pytest.fixture(scope="module")
def duplication() -> pl.DataFrame:
    return make_duplication()


@pytest.fixture(scope="module")
def rendered(summary, duplication) -> dict:
    """Every figure with its caption facts, rendered once for the whole module."""
    return {
        "extraction_vs_sparsity": plot_extraction_vs_sparsity(summary),
        "extraction_vs_prefix_length": plot_extraction_vs_prefix_length(summary, CHOSEN_SPARSITY),
        "perplexity_vs_sparsity": plot_perplexity_vs_sparsity(summary),
        "extraction_vs_perplexity": plot_extraction_vs_perplexity(summary, CHOSEN_K),
        "mia_auc_vs_sparsity": plot_mia_auc_vs_sparsity(summary, CHOSEN_K),
        "extraction_vs_duplicates": plot_extraction_vs_duplicates(duplication, CHOSEN_K, CHOSEN_SPARSITY),
    }


@pytest.fixture(scope="module")
def written(summary, duplication, tmp_path_factory) -> tuple:
    out_dir = tmp_path_factory.mktemp("figures")
    return out_dir, make_all_figures(summary, duplication, out_dir, CHOSEN_K, CHOSEN_SPARSITY)


def test_make_all_figures_writes_every_file(written):
    out_dir, paths = written

    expected = [out_dir / MODEL / f"{name}.{suffix}" for name in FIGURE_NAMES for suffix in ("pdf", "png", "json")]
    assert paths == expected
    for path in paths:
        assert path.is_file()
        assert path.stat().st_size > 0
    assert sorted(path.name for path in (out_dir / MODEL).iterdir()) == sorted(path.name for path in expected)


def test_make_all_figures_valid_pdf_png(written):
    out_dir, _ = written

    for name in FIGURE_NAMES:
        pdf = (out_dir / MODEL / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-")
        assert pdf.rstrip().endswith(b"%%EOF")
        png = out_dir / MODEL / f"{name}.png"
        assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_png_width_matches_column_width(written):
    out_dir, _ = written

    # One panel fills one 3.3 in column, several panels the 6.8 in text width, at 200 dpi.
    assert _png_size(out_dir / MODEL / "perplexity_vs_sparsity.png")[0] == round(3.3 * PNG_DPI)
    assert _png_size(out_dir / MODEL / "extraction_vs_duplicates.png")[0] == round(3.3 * PNG_DPI)
    assert _png_size(out_dir / MODEL / "extraction_vs_sparsity.png")[0] == round(6.8 * PNG_DPI)
    assert _png_size(out_dir / MODEL / "mia_auc_vs_sparsity.png")[0] == round(6.8 * PNG_DPI)


def test_facts_json_matches_returned_facts(written, rendered):
    out_dir, _ = written

    stored = json.loads((out_dir / MODEL / "perplexity_vs_sparsity.json").read_text())
    _, facts = rendered["perplexity_vs_sparsity"]
    assert stored["n_inf_perplexity"] == facts["n_inf_perplexity"] == 3
    assert stored["n_nan_perplexity"] == facts["n_nan_perplexity"] == 1
    assert stored["model"] == MODEL


def test_perplexity_vs_sparsity_counts_nonfinite(rendered):
    _, facts = rendered["perplexity_vs_sparsity"]

    assert facts["n_inf_perplexity"] == 3
    assert facts["n_nan_perplexity"] == 1
    assert facts["n_nonfinite_perplexity"] == 4
    assert sorted(facts["nonfinite_perplexity_points"]) == [
        "all_linear at 90%: inf",
        "global_magnitude at 90%: inf",
        "random at 80%: inf",
        "random at 90%: NaN",
    ]
    assert facts["dense_perplexity"] == DENSE_PERPLEXITY


def test_extraction_vs_perplexity_counts_nonfinite(rendered):
    _, facts = rendered["extraction_vs_perplexity"]

    assert facts["k"] == CHOSEN_K
    assert facts["n_inf_perplexity"] == 3
    assert facts["n_nan_perplexity"] == 1
    assert facts["annotated_sparsities"] == [50, 90]
    assert facts["dense_extraction_rate"] == pytest.approx(DENSE_RATE_BY_K[CHOSEN_K])


@pytest.mark.parametrize(
    ("name", "strip_text"),
    [
        ("perplexity_vs_sparsity", "perplexity \u25b2 inf, \u25b3 NaN"),
        ("extraction_vs_perplexity", "perplexity \u25bc inf, \u25bd NaN"),
    ],
)
def test_nonfinite_perplexity_drawn_as_clipped_markers(rendered, name, strip_text):
    figure, _ = rendered[name]
    ax = figure.axes[0]

    clipped = [line for line in ax.get_lines() if line.get_label().startswith("_clipped")]
    kinds = sorted(line.get_label().split(":")[0] for line in clipped)
    assert kinds == ["_clipped inf"] * 3 + ["_clipped nan"]
    for line in clipped:
        strategy = line.get_label().split(": ")[1]
        assert line.get_markeredgecolor() == PRESET_STYLES[strategy].color
        is_inf = line.get_label().startswith("_clipped inf")
        assert (line.get_markerfacecolor() == PRESET_STYLES[strategy].color) == is_inf
    assert [text.get_text() for text in ax.texts if "NaN" in text.get_text()] == [strip_text]


def test_mia_auc_counts_nan_per_score(rendered):
    figure, facts = rendered["mia_auc_vs_sparsity"]

    assert facts["n_nan_auc_by_score"] == {"loss": 1, "zlib": 1, "min_k": 1}
    assert facts["n_nonfinite_auc"] == 3
    assert facts["n_nan_loss"] == 4000
    assert facts["dense_auc_by_score"] == pytest.approx(DENSE_AUC)
    assert len(figure.axes) == 3
    for ax in figure.axes:
        chance = [line for line in ax.get_lines() if line.get_label() == "_chance"]
        assert len(chance) == 1
        assert list(chance[0].get_ydata()) == [0.5, 0.5]


def test_strategy_colours_same_in_every_figure(rendered):
    colours: dict[str, set] = {strategy: set() for strategy in STRATEGIES}
    markers: dict[str, set] = {strategy: set() for strategy in STRATEGIES}

    for name, (figure, _) in rendered.items():
        found = set()
        for ax in figure.axes:
            for line in ax.get_lines():
                if line.get_label() in colours:
                    colours[line.get_label()].add(line.get_color())
                    markers[line.get_label()].add(line.get_marker())
                    found.add(line.get_label())
        assert found == set(STRATEGIES), name

    for strategy in STRATEGIES:
        assert colours[strategy] == {PRESET_STYLES[strategy].color}
        assert markers[strategy] == {PRESET_STYLES[strategy].marker}
    assert len({style.color for style in PRESET_STYLES.values()}) == len(PRESET_STYLES)


def test_dense_baseline_marked_in_extraction_vs_sparsity(rendered):
    figure, facts = rendered["extraction_vs_sparsity"]

    assert facts["ks"] == list(KS)
    assert facts["dense_extraction_rate_by_k"] == pytest.approx(DENSE_RATE_BY_K)
    for ax, k in zip(figure.axes, KS):
        assert ax.get_title() == f"k = {k}"
        stars = [line for line in ax.get_lines() if line.get_label() == "dense"]
        assert len(stars) == 1
        assert list(stars[0].get_xdata()) == [0.0]
        assert stars[0].get_ydata()[0] == pytest.approx(DENSE_RATE_BY_K[k])
        dashed = [line for line in ax.get_lines() if line.get_label() == "_dense line"]
        assert dashed[0].get_linestyle() == "--"
        assert dashed[0].get_ydata()[0] == pytest.approx(DENSE_RATE_BY_K[k])


def test_wilson_bands_drawn_per_strategy(rendered, summary):
    figure, _ = rendered["extraction_vs_sparsity"]
    ax = figure.axes[0]

    bands = {
        collection.get_label(): collection
        for collection in ax.collections
        if collection.get_label().startswith("_interval")
    }
    assert sorted(bands) == sorted(f"_interval: {strategy}" for strategy in STRATEGIES)
    rows = summary.filter((pl.col("strategy") == "global_magnitude") & (pl.col("k") == KS[0])).sort("sparsity")
    vertices = bands["_interval: global_magnitude"].get_paths()[0].vertices
    assert vertices[:, 1].min() == pytest.approx(rows.get_column("extraction_rate_low").min())
    assert vertices[:, 1].max() == pytest.approx(rows.get_column("extraction_rate_high").max())


def test_all_text_at_least_minimum_size(rendered):
    for name, (figure, _) in rendered.items():
        for text in figure.findobj(Text):
            if text.get_text() and text.get_visible():
                assert text.get_fontsize() >= MIN_FONT_SIZE_PT, (name, text.get_text())


def test_duplicates_axis_log2_for_powers_of_two(rendered, duplication):
    _, facts = rendered["extraction_vs_duplicates"]

    assert facts["x_scale"] == "log2"
    assert facts["duplicates"] == list(DUPLICATES)
    assert facts["min_members_per_point"] == 1600 // max(DUPLICATES)

    uneven = duplication.with_columns(pl.col("duplicates").replace({1: 3, 2: 5}))
    _, uneven_facts = plot_extraction_vs_duplicates(uneven, CHOSEN_K, CHOSEN_SPARSITY)
    assert uneven_facts["x_scale"] == "linear"


def test_prefix_length_figure_lists_missing_strategy(summary):
    thinned = summary.filter(~((pl.col("strategy") == "random") & (pl.col("sparsity") == CHOSEN_SPARSITY)))

    figure, facts = plot_extraction_vs_prefix_length(thinned, CHOSEN_SPARSITY)

    assert facts["strategies_missing"] == ["random"]
    assert "random" not in {line.get_label() for line in figure.axes[0].get_lines()}
    assert facts["x_scale"] == "log2"


def test_absent_k_raises_with_available_values(summary):
    with pytest.raises(PlotInputError, match=r"k=999.*available k values: \[16, 32, 64, 128\]"):
        plot_extraction_vs_perplexity(summary, 999)
    with pytest.raises(PlotInputError, match="k=999"):
        plot_extraction_vs_sparsity(summary, ks=[999])
    with pytest.raises(PlotInputError, match="k=999"):
        plot_mia_auc_vs_sparsity(summary, 999)


def test_absent_sparsity_raises(summary):
    with pytest.raises(PlotInputError, match=r"sparsity=55.*available sparsity values"):
        plot_extraction_vs_prefix_length(summary, 55)


def test_empty_table_raises(summary, duplication):
    with pytest.raises(PlotInputError, match="summary table is empty"):
        plot_perplexity_vs_sparsity(summary.clear())
    with pytest.raises(PlotInputError, match="duplication table is empty"):
        plot_extraction_vs_duplicates(duplication.clear(), CHOSEN_K, CHOSEN_SPARSITY)


def test_only_dense_rows_raise(summary):
    with pytest.raises(PlotInputError, match="no pruned strategy"):
        plot_extraction_vs_sparsity(summary.filter(pl.col("strategy") == "dense"))


def test_missing_column_raises(summary):
    with pytest.raises(PlotInputError, match=r"missing column\(s\) \['token_perplexity'\]"):
        plot_perplexity_vs_sparsity(summary.drop("token_perplexity"))


def test_rate_outside_interval_raises(summary):
    broken = summary.with_columns(
        pl.when((pl.col("strategy") == "all_linear") & (pl.col("sparsity") == 30) & (pl.col("k") == 32))
        .then(pl.lit(0.9))
        .otherwise(pl.col("extraction_rate"))
        .alias("extraction_rate")
    )

    with pytest.raises(PlotInputError, match=r"strategy='all_linear', sparsity=30, k=32"):
        plot_extraction_vs_sparsity(broken)


def test_float_sparsity_raises(summary):
    with pytest.raises(PlotInputError, match="sparsity.*must hold integers"):
        plot_extraction_vs_sparsity(summary.with_columns(pl.col("sparsity").cast(pl.Float64)))


def test_repeated_key_raises(summary):
    with pytest.raises(PlotInputError, match="rows sharing a key"):
        plot_extraction_vs_sparsity(pl.concat([summary, summary.head(1)]))


def test_conflicting_perplexity_across_k_raises(summary):
    conflicting = summary.with_columns(
        pl.when((pl.col("strategy") == "random") & (pl.col("sparsity") == 10) & (pl.col("k") == 16))
        .then(pl.lit(999.0))
        .otherwise(pl.col("token_perplexity"))
        .alias("token_perplexity")
    )

    with pytest.raises(PlotInputError, match="differs between k rows.*'random', sparsity 10"):
        plot_perplexity_vs_sparsity(conflicting)


def test_nonpositive_perplexity_raises(summary):
    with pytest.raises(PlotInputError, match="must be positive"):
        plot_perplexity_vs_sparsity(summary.with_columns(pl.col("token_perplexity") * 0.0))


def test_several_models_need_a_choice(summary):
    two_models = pl.concat([summary, summary.with_columns(pl.lit("other").alias("model"))])

    with pytest.raises(PlotInputError, match=r"contains 2 models \['demo-neox', 'other'\]; pass model="):
        plot_perplexity_vs_sparsity(two_models)
    _, facts = plot_perplexity_vs_sparsity(two_models, model="other")
    assert facts["model"] == "other"


def test_all_perplexities_nonfinite_still_render(summary, tmp_path):
    diverged = summary.with_columns(
        pl.when(pl.col("strategy") == "dense")
        .then(pl.col("token_perplexity"))
        .otherwise(pl.lit(math.inf))
        .alias("token_perplexity")
    )

    figure, facts = plot_perplexity_vs_sparsity(diverged)
    save_figure(figure, tmp_path / "diverged")

    assert facts["n_inf_perplexity"] == len(STRATEGIES) * len(SPARSITIES)
    assert facts["n_nan_perplexity"] == 0
    assert (tmp_path / "diverged.png").read_bytes().startswith(PNG_SIGNATURE)


def test_user_strategy_gets_stable_distinct_style(summary):
    custom = summary.filter(pl.col("strategy") == "random").with_columns(pl.lit("wanda_50").alias("strategy"))
    extended = pl.concat([summary, custom])

    figure, facts = plot_extraction_vs_sparsity(extended, ks=[CHOSEN_K])

    style = strategy_style("wanda_50")
    assert style == strategy_style("wanda_50")
    assert style.color not in {preset.color for preset in PRESET_STYLES.values()}
    assert style.marker not in {preset.marker for preset in PRESET_STYLES.values()}
    assert facts["strategies"] == [*STRATEGIES, "wanda_50"]
    lines = [line for line in figure.axes[0].get_lines() if line.get_label() == "wanda_50"]
    assert lines[0].get_color() == style.color


RENDER_SCRIPT = """
import sys
import polars as pl
from memprune.plots import plot_extraction_vs_perplexity, save_figure

figure, _ = plot_extraction_vs_perplexity(pl.read_parquet(sys.argv[1]), 64)
save_figure(figure, sys.argv[2])
"""


def test_two_renders_give_identical_bytes(summary, tmp_path):
    summary.write_parquet(tmp_path / "summary.parquet")

    # Separate processes with different hash seeds, so no state or set order carries over.
    for attempt, seed in (("first", "1"), ("second", "2")):
        subprocess.run(
            [sys.executable, "-c", RENDER_SCRIPT, str(tmp_path / "summary.parquet"), str(tmp_path / attempt / "fig")],
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=120,
        )

    for suffix in ("pdf", "png"):
        first = (tmp_path / "first" / f"fig.{suffix}").read_bytes()
        second = (tmp_path / "second" / f"fig.{suffix}").read_bytes()
        assert first == second, suffix
    assert b"CreationDate" not in (tmp_path / "first" / "fig.pdf").read_bytes()


def test_save_figure_keeps_dots_in_stem(rendered, tmp_path):
    figure, _ = rendered["extraction_vs_duplicates"]

    pdf_path, png_path = save_figure(figure, tmp_path / "pythia-1.4b" / "duplicates.k64")

    assert pdf_path == tmp_path / "pythia-1.4b" / "duplicates.k64.pdf"
    assert png_path == tmp_path / "pythia-1.4b" / "duplicates.k64.png"
    written_names = sorted(path.name for path in (tmp_path / "pythia-1.4b").iterdir())
    assert written_names == ["duplicates.k64.pdf", "duplicates.k64.png"]


def test_save_figure_failure_keeps_old_files(tmp_path):
    from memprune.plots.style import figure_style, new_figure

    (tmp_path / "figure.pdf").write_bytes(b"old pdf")
    (tmp_path / "figure.png").write_bytes(b"old png")
    with figure_style():
        figure = new_figure(3.3, 2.0)
        # Unbalanced mathtext fails only when the figure is drawn, that is inside savefig.
        figure.text(0.5, 0.5, r"$\frac{1}{$")

    with pytest.raises(ValueError):
        save_figure(figure, tmp_path / "figure")

    assert (tmp_path / "figure.pdf").read_bytes() == b"old pdf"
    assert (tmp_path / "figure.png").read_bytes() == b"old png"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["figure.pdf", "figure.png"]


def test_report_labels_flatten_facts(rendered):
    _, facts = rendered["perplexity_vs_sparsity"]

    labels = report_labels(facts)

    assert labels["n_nonfinite_perplexity"] == 4
    assert labels["strategies"] == ", ".join(STRATEGIES)
    assert labels["dense_perplexity"] == "25"
    for value in labels.values():
        assert isinstance(value, (str, int))


REPORT_SNAKEFILE = """
from memprune.plots import FIGURE_NAMES, load_report_labels


def facts_labels(name):
    return lambda wildcards, output: load_report_labels(output[f"{name}_facts"])


rule figures:
    input:
        summary="summary.parquet",
        duplication="duplication.parquet",
    output:
        **{
            f"{name}_png": report(
                f"figures/demo-neox/{name}.png",
                caption=f"{config['captions']}/{name}.rst",
                category="Figures",
                labels=facts_labels(name),
            )
            for name in FIGURE_NAMES
        },
        **{f"{name}_pdf": f"figures/demo-neox/{name}.pdf" for name in FIGURE_NAMES},
        **{f"{name}_facts": f"figures/demo-neox/{name}.json" for name in FIGURE_NAMES},
    run:
        import polars as pl
        from memprune.plots import make_all_figures

        make_all_figures(pl.read_parquet(input.summary), pl.read_parquet(input.duplication), "figures", 64, 50)
"""


@pytest.mark.slow
def test_report_captions_state_facts(summary, duplication, tmp_path):
    captions = Path(__file__).resolve().parents[1] / "workflow" / "report"
    summary.write_parquet(tmp_path / "summary.parquet")
    duplication.write_parquet(tmp_path / "duplication.parquet")
    (tmp_path / "Snakefile").write_text(REPORT_SNAKEFILE)
    command = [sys.executable, "-m", "snakemake", "--config", f"captions={captions}"]

    for arguments in (["--cores", "1", "--quiet"], ["--report", "report.html"]):
        run = subprocess.run([*command, *arguments], cwd=tmp_path, timeout=300, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-3000:]

    html = (tmp_path / "report.html").read_text()
    assert "dense perplexity 25;\\n4 non-finite perplexities (3 inf,\\n1 NaN)" in html
    assert "NaN AUCs 3 (loss: 1; zlib: 1; min_k: 1)" in html
    assert "the smallest bin holds 50 samples" in html
    assert "System Message" not in html
