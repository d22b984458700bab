"""Config checks that reject a bad config before any job runs."""

import copy
import subprocess

import pytest
import yaml

from conftest import REPO, SNAKEMAKE, tiny_config, write_config
from memprune.config import ConfigError, check_config, check_schema, check_strategies, grid

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def config(tmp_path):
    return tiny_config(tmp_path)


def full_check(config):
    check_schema(config, SCHEMA)
    check_config(config, base_dir=REPO)
    check_strategies(config)


def test_default_config_is_valid():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    full_check(config)
    assert len(grid(config)) == 1 + 6 * 5


def test_unknown_top_level_key_is_named(config):
    config["sparsity_levels"] = [10]
    with pytest.raises(ConfigError, match=r"config key <top level>: Additional properties are not allowed \('sparsity_levels' was unexpected\); allowed keys: .*sparsities"):
        full_check(config)


def test_unknown_nested_key_is_named(config):
    config["memorization"]["suffix_len"] = 50
    with pytest.raises(ConfigError, match=r"config key memorization: .*'suffix_len' was unexpected"):
        full_check(config)


@pytest.mark.parametrize("bad_k", [0, -5])
def test_non_positive_prefix_length_is_rejected(config, bad_k):
    config["memorization"]["prefix_lengths"] = [bad_k, 16]
    with pytest.raises(ConfigError, match=rf"config key memorization.prefix_lengths\[0\]: {bad_k} is less than the minimum of 1"):
        full_check(config)


def test_prefix_plus_suffix_beyond_context_is_rejected(config):
    config["memorization"]["prefix_lengths"] = [16, 60]
    with pytest.raises(ConfigError, match=r"60 \+ 16 = 76 tokens exceeds the context length 64 of model pythia-demo"):
        full_check(config)


@pytest.mark.parametrize("bad_sparsity", [0, 100, 150, -10])
def test_sparsity_outside_range_is_rejected(config, bad_sparsity):
    config["sparsities"] = [50, bad_sparsity]
    with pytest.raises(ConfigError, match=rf"config key sparsities\[1\]: {bad_sparsity} is (less than the minimum of 1|greater than the maximum of 99)"):
        full_check(config)


def test_fraction_outside_range_is_rejected(config):
    config["membership_inference"]["min_k_fraction"] = 1.5
    with pytest.raises(ConfigError, match=r"config key membership_inference.min_k_fraction: 1.5 is greater than the maximum of 1"):
        full_check(config)


def test_deepest_fraction_outside_range_is_rejected(config):
    config["strategies"]["deep"] = {"criterion": "magnitude", "scope": "per_tensor", "modules": ["mlp.dense_4h_to_h"], "layers": {"deepest_fraction": 0}}
    with pytest.raises(ConfigError, match=r"config key strategies.deep.layers"):
        full_check(config)


def test_missing_corpus_file_is_named(config):
    config["corpora"]["minipile"]["nonmembers"]["paths"] = ["resources/minipile/absent.jsonl.zst"]
    with pytest.raises(ConfigError, match=r"corpora.minipile.nonmembers.paths\[0\]: file not found: resources/minipile/absent.jsonl.zst"):
        full_check(config)


def test_unknown_criterion_lists_allowed_values(config):
    config["strategies"]["global_magnitude"]["criterion"] = "wanda"
    with pytest.raises(ConfigError, match=r"config key strategies.global_magnitude.criterion: 'wanda' is not one of \['magnitude', 'random'\]"):
        full_check(config)


def test_unknown_scope_lists_allowed_values(config):
    config["strategies"]["global_magnitude"]["scope"] = "layer"
    with pytest.raises(ConfigError, match=r"'layer' is not one of \['per_tensor', 'global'\]"):
        full_check(config)


def test_module_pattern_matching_nothing_lists_real_names(config):
    config["strategies"]["attention_only"]["modules"] = ["self_attn.q_proj"]
    with pytest.raises(ConfigError, match=r"model pythia-demo: .*self_attn\.q_proj.*gpt_neox\.layers\.0\.attention\.query_key_value"):
        full_check(config)


def test_layer_range_outside_model_is_rejected(config):
    config["strategies"]["attention_only"]["layers"] = {"start": 1, "stop": 5}
    with pytest.raises(ConfigError, match=r"model pythia-demo: .*attention_only.*2"):
        full_check(config)


def test_unknown_reference_names_defined_values(config):
    config["corpora"]["minipile"]["tokenizer_model"] = "pythia-70m"
    with pytest.raises(ConfigError, match=r"corpora.minipile.tokenizer_model: 'pythia-70m' is not a model; defined models: pythia-demo"):
        full_check(config)


def test_dense_is_a_reserved_strategy_name(config):
    config["strategies"]["dense"] = copy.deepcopy(config["strategies"]["attention_only"])
    with pytest.raises(ConfigError, match="reserved for the unpruned baseline"):
        full_check(config)


def test_figure_slice_must_be_in_grid(config):
    config["figures"] = {"k": 12, "sparsity": 50}
    with pytest.raises(ConfigError, match=r"figures.k: 12 is not in memorization.prefix_lengths \[8, 16\]"):
        full_check(config)


def test_snakemake_rejects_bad_config_before_any_job(tmp_path, config):
    config["memorization"]["prefix_lengths"] = [0]
    config_path = write_config(tmp_path / "bad.yaml", config)
    result = subprocess.run(
        [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(config_path), "-n", "--directory", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode != 0
    assert "config key memorization.prefix_lengths[0]: 0 is less than the minimum of 1" in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()
