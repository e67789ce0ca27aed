"""Configuration: presets, files, validation errors that name the key, hashes."""

import json

import pytest

from pyaimc.experiments.config import (PRESETS, ConfigError, RunConfig, config_hash, differences,
                              from_dict, load_config, preset, to_dict, validate)


def test_presets_are_valid_and_distinct():
    hashes = {name: config_hash(validate(cfg)) for name, cfg in PRESETS.items()}
    assert len(set(hashes.values())) == len(PRESETS)
    assert preset("ternary").quant.dense == "ternary" and preset("ternary").quant.a == 8
    assert preset("4bit").quant.b == 4 and preset("fp32").quant.dense is None


def test_partial_dict_keeps_defaults():
    cfg = from_dict({"model": {"d_model": 32}, "seed": 3})
    assert cfg.model.d_model == 32 and cfg.seed == 3
    assert cfg.model.d_state == RunConfig().model.d_state


def test_preset_key_in_file_is_the_base(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"schema": "pyaimc.train-config/1", "preset": "4bit",
                                "train": {"epochs": 7}}))
    cfg = load_config(path)
    assert cfg.quant.b == 4 and cfg.train.epochs == 7


def test_toml_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seed = 5\n[quant]\nc = "ternary"\nact = 6\n[model]\ninit = "inv"\n')
    cfg = load_config(path)
    assert (cfg.seed, cfg.quant.c, cfg.quant.act, cfg.model.init) == (5, "ternary", 6, "inv")


@pytest.mark.parametrize("values,key", [
    ({"model": {"d_modle": 3}}, "model.d_modle"),
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"train": {"optimizer": {"lr": 1}}}, "train.optimizer"),
])
def test_unknown_key_is_named(values, key):
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        from_dict(values)


@pytest.mark.parametrize("values,key", [
    ({"model": {"d_state": 63}}, "model.d_state"),
    ({"model": {"d_model": 0}}, "model.d_model"),
    ({"model": {"init": "legs"}}, "model.init"),
    ({"model": {"dt_min": 0.5, "dt_max": 0.1}}, "model.dt_max"),
    ({"quant": {"b": 1}}, "quant.b"),
    ({"quant": {"state": "ternary"}}, "quant.state"),
    ({"train": {"lr": -1}}, "train.lr"),
    ({"train": {"epochs": 2.5}}, "train.epochs"),
    ({"train": {"epochs": 2, "warmup_epochs": 3}}, "train.warmup_epochs"),
    ({"data": {"task": "imagenet"}}, "data.task"),
    ({"prune": {"d_state": 128}}, "prune.d_state"),
    ({"model": "big"}, "model"),
    ({"model": {"prenorm": "yes"}}, "model.prenorm"),
    ({"products": "half"}, "products"),
])
def test_impossible_value_is_named(values, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        from_dict(values)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"quant": {"dense": 99}}))
    with pytest.raises(ConfigError, match=r"bad\.json: quant\.dense"):
        load_config(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json: cannot parse"):
        load_config(path)
    with pytest.raises(ConfigError, match="schema"):
        from_dict({"schema": "pyaimc.noise/1"})
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")


def test_hash_and_differences():
    a = preset("fp32")
    b = from_dict({"model": {"d_model": 32}, "quant": {"c": 4}})
    assert config_hash(a) == config_hash(from_dict({})) and config_hash(a) != config_hash(b)
    assert differences(to_dict(a), to_dict(b)) == ["model.d_model: 64 != 32",
                                                   "quant.c: None != 4"]


def test_products_are_written_only_when_not_auto_and_reach_the_layers(tmp_path):
    import torch

    from _noise_helpers import example_noise_model
    from pyaimc.analog.config import AnalogConfig
    from pyaimc.s4d.hardware import analog_linear_factory

    assert "products" not in to_dict(RunConfig())          # old runs keep their hash
    cfg = from_dict({"products": "float32"})
    assert cfg.products == "float32" and to_dict(cfg)["products"] == "float32"
    assert config_hash(cfg) != config_hash(RunConfig())
    make = analog_linear_factory(cfg.quant, example_noise_model(), 0,
                                 AnalogConfig(products=cfg.products))
    assert make(4, 3, "dense").config.products == "float32"
    assert isinstance(make(4, 3, "dense")(torch.zeros(2, 4)), torch.Tensor)
