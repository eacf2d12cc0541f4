"""Unit tests of params.yaml loading and dotted overrides (reference_pipeline.config)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from reference_pipeline.config import ConfigError, Params, load_params

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_repo_params_match_the_dataclass_defaults():
    # params.yaml documents the defaults: the two must not drift apart.
    params = load_params(REPO / "params.yaml")
    defaults = Params().to_dict()
    for section in ("data", "model", "train"):
        assert params.to_dict()[section] == defaults[section], section


def test_sections_other_than_the_core_are_kept_as_dicts(tmp_path):
    path = write(tmp_path, "train: {epochs: 2}\nevaluate: {top_k: 5}\n")
    params = load_params(path)
    assert params.train.epochs == 2
    assert params.extra == {"evaluate": {"top_k": 5}}
    assert params.to_dict()["evaluate"] == {"top_k": 5}


def test_dotted_overrides_apply_and_parse_strings(tmp_path):
    path = write(tmp_path, "train: {lr: 0.1}\nevaluate: {top_k: 5}\n")
    params = load_params(
        path,
        {
            "train.lr": 0.01,
            "train.epochs": "7",
            "train.amp": "false",
            "data.source": "news.csv",
            "data.max_rows_per_label": "null",
            "evaluate.top_k": 3,
        },
    )
    assert params.train.lr == 0.01
    assert params.train.epochs == 7
    assert params.train.amp is False
    assert params.data.source == "news.csv"
    assert params.data.max_rows_per_label is None
    assert params.extra["evaluate"]["top_k"] == 3


def test_int_is_accepted_for_a_float_field():
    params = load_params(None, {"train.lr": 1})
    assert params.train.lr == 1.0
    assert isinstance(params.train.lr, float)


def test_to_dict_round_trips_through_yaml(tmp_path):
    params = load_params(None, {"model.embedding_dim": 8, "train.device": "cpu"})
    path = write(tmp_path, yaml.safe_dump(params.to_dict()))
    assert load_params(path) == params
    assert dataclasses.asdict(load_params(path).model)["embedding_dim"] == 8


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.lrr": 1}, "override: unknown key 'train.lrr' (did you mean 'train.lr'?)"),
        (
            {"trian.lr": 1},
            "override 'trian.lr': unknown section 'trian' (known: data, model, train)",
        ),
        ({"lr": 1}, "override 'lr': use section.key, e.g. 'train.lr'"),
        ({"train.epochs": "many"}, "overrides: train.epochs must be int, got 'many'"),
        ({"train.amp": 1}, "overrides: train.amp must be bool, got 1"),
        ({"train.epochs": None}, "overrides: train.epochs cannot be null"),
        ({"data.seed": 1.5}, "overrides: data.seed must be int, got 1.5"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_params(None, overrides)
    assert str(info.value) == message


def test_unknown_key_in_an_extra_section_is_an_error(tmp_path):
    path = write(tmp_path, "tune: {trials: 5}\n")
    with pytest.raises(
        ConfigError, match=r"unknown key 'tune.trails' \(did you mean 'tune.trials'"
    ):
        load_params(path, {"tune.trails": 3})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: {embeding_dim: 8}\n", "{path}: unknown key 'model.embeding_dim' (did you mean"),
        ("train: 3\n", "{path}: section 'train' must be a mapping, got int"),
        ("- a\n- b\n", "{path}: expected a mapping of sections at the top level"),
        ("train: {lr: [\n", "{path}: not valid YAML: "),
        ("train: {device: 3}\n", "{path}: train.device must be str, got 3"),
    ],
)
def test_bad_params_files_name_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_params(path)
    assert str(info.value).startswith(message.format(path=path))


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: params file not found$"):
        load_params(tmp_path / "nope.yaml")


def test_empty_params_file_gives_defaults(tmp_path):
    assert load_params(write(tmp_path, "")) == Params()
