"""Typed configs: YAML + key=value overrides -> nested dataclasses, with errors that name the key."""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from vidsme.config import (
    ConfigError,
    config_from_dict,
    config_hash,
    config_to_dict,
    load_config,
    parse_override,
)
from vidsme.errors import VidsmeError

# --------------------------------------------------------------------------- example configs


@dataclass(frozen=True)
class Optim:
    """Two levels down: train.optim."""

    name: Literal["adamw", "sgd"] = "adamw"  # optimiser
    betas: tuple[float, ...] = (0.9, 0.999)  # Adam betas
    weight_decay: float = 0.0


@dataclass(frozen=True)
class Train:
    lr: float = 1e-4  # peak learning rate
    epochs: int = 3
    strategy: Literal["full", "lora"] = "full"
    warmup: Optional[int] = None  # noqa: UP045 - the typing.Optional spelling on purpose
    layers: list[int] = field(default_factory=lambda: [0, 1])
    bf16: bool = True
    optim: Optim = field(default_factory=Optim)


@dataclass(frozen=True)
class Target:
    name: str  # required
    output_dir: Path = Path("runs/out")
    seed: int | None = 0
    tags: dict[str, str] = field(default_factory=dict)
    train: Train = field(default_factory=Train)


@dataclass
class Mutable:
    """Not frozen: building goes through the constructor all the same."""

    name: str
    size: tuple[int, int] = (224, 224)


class Precision(enum.Enum):
    BF16 = "bf16"
    FP32 = "fp32"


@dataclass(frozen=True)
class Checked:
    """A section that validates itself: its ValueError becomes a ConfigError naming the section."""

    low: int = 0
    high: int = 1
    precision: Precision = Precision.BF16

    def __post_init__(self):
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")


@dataclass(frozen=True)
class Outer:
    checked: Checked = field(default_factory=Checked)
    extra: Optional[Checked] = None  # noqa: UP045


YAML = """\
# launch: vidsme train target configs/targets/example.yaml train.lr=1e-4
name: mcqa-full
output_dir: runs/mcqa
train:
  lr: 3e-4          # no dot: PyYAML alone would read a string
  strategy: lora
  optim:
    betas: [0.8, 0.99]
"""


def write(tmp_path: Path, text: str, name: str = "target.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    return write(tmp_path, YAML)


# --------------------------------------------------------------------------- loading


def test_yaml_load_fills_defaults(cfg_file: Path):
    cfg = load_config(Target, cfg_file)
    assert cfg == Target(
        name="mcqa-full",
        output_dir=Path("runs/mcqa"),
        train=Train(lr=3e-4, strategy="lora", optim=Optim(betas=(0.8, 0.99))),
    )
    assert isinstance(cfg.output_dir, Path)
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 3e-4
    assert cfg.train.optim.betas == (0.8, 0.99) and isinstance(cfg.train.optim.betas, tuple)
    assert cfg.train.epochs == 3 and cfg.train.layers == [0, 1] and cfg.train.optim.name == "adamw"


def test_no_file_only_overrides():
    cfg = load_config(Target, None, ["name=x"])
    assert cfg == Target(name="x")


def test_empty_file_is_empty_mapping(tmp_path: Path):
    path = write(tmp_path, "# only a comment\n")
    assert load_config(Target, path, ["name=a"]) == Target(name="a")


def test_int_accepted_for_float_and_converted():
    cfg = config_from_dict(Target, {"name": "a", "train": {"lr": 1, "optim": {"betas": [1, 0]}}})
    assert cfg.train.lr == 1.0 and type(cfg.train.lr) is float
    assert cfg.train.optim.betas == (1.0, 0.0) and all(type(b) is float for b in cfg.train.optim.betas)


def test_mutable_dataclass_and_fixed_tuple():
    assert config_from_dict(Mutable, {"name": "m", "size": [64, 32]}) == Mutable("m", (64, 32))
    with pytest.raises(ConfigError, match=r"size: expected tuple\[int, int\], got \[1, 2, 3\] \(3 items, need 2\)"):
        config_from_dict(Mutable, {"name": "m", "size": [1, 2, 3]})


# --------------------------------------------------------------------------- overrides


def test_parse_override_values():
    assert parse_override("train.lr=1e-3") == (["train", "lr"], 1e-3)
    assert parse_override("train.bf16=true") == (["train", "bf16"], True)
    assert parse_override("seed=null") == (["seed"], None)
    assert parse_override("train.layers=[1, 2]") == (["train", "layers"], [1, 2])
    assert parse_override("train.optim={name: sgd}") == (["train", "optim"], {"name": "sgd"})
    assert parse_override("name=a=b") == (["name"], "a=b")
    assert parse_override(" train.epochs = 5 ") == (["train", "epochs"], 5)
    assert parse_override("name=") == (["name"], "")
    assert parse_override("name=yes") == (["name"], "yes")  # YAML 1.2: only true/false are bools


def test_overrides_nested_and_typed(cfg_file: Path):
    cfg = load_config(Target, cfg_file, ["train.lr=1e-3", "train.bf16=false", "seed=null", "train.layers=[1, 2]",
                                         "train.optim.weight_decay=0.1", "output_dir=/tmp/o"])
    assert cfg.train.lr == 1e-3 and cfg.train.bf16 is False and cfg.seed is None
    assert cfg.train.layers == [1, 2] and cfg.train.optim.weight_decay == 0.1
    assert cfg.output_dir == Path("/tmp/o")
    assert cfg.train.strategy == "lora" and cfg.train.optim.betas == (0.8, 0.99)  # untouched YAML values stay


def test_override_keys_the_yaml_did_not_mention(tmp_path: Path):
    path = write(tmp_path, "name: a\n")
    cfg = load_config(Target, path, ["train.optim.name=sgd", "tags.split=cinepile"])
    assert cfg.train.optim == Optim(name="sgd")  # the rest of the section from defaults
    assert cfg.train == Train(optim=Optim(name="sgd"))
    assert cfg.tags == {"split": "cinepile"}


def test_override_replaces_whole_section(cfg_file: Path):
    cfg = load_config(Target, cfg_file, ["train={epochs: 7}"])
    assert cfg.train == Train(epochs=7)  # lr / strategy / optim from the YAML are gone: defaults
    cfg = load_config(Target, cfg_file, ["train.optim={weight_decay: 0.5}"])
    assert cfg.train.optim == Optim(weight_decay=0.5) and cfg.train.lr == 3e-4


def test_overrides_apply_in_order(cfg_file: Path):
    assert load_config(Target, cfg_file, ["train.epochs=1", "train.epochs=2"]).train.epochs == 2
    cfg = load_config(Target, cfg_file, ["train={epochs: 7}", "train.lr=0.5"])
    assert cfg.train == Train(epochs=7, lr=0.5)
    with pytest.raises(ConfigError) as info:  # the error names the override that set the bad value last
        load_config(Target, cfg_file, ["train.epochs=1", "train={epochs: x}"])
    assert str(info.value) == "train.epochs: expected int, got 'x' (in override 'train={epochs: x}')"


def test_string_fields_keep_override_text():
    cfg = load_config(Target, None, ["name=2024-05-01", "tags.rev=1234", "output_dir=123"])
    assert cfg.name == "2024-05-01" and cfg.tags == {"rev": "1234"} and cfg.output_dir == Path("123")


# --------------------------------------------------------------------------- type errors


def test_type_error_names_file_key_type_and_value(tmp_path: Path):
    path = write(tmp_path, "name: a\ntrain:\n  lr: fast\n")
    with pytest.raises(ConfigError) as info:
        load_config(Target, path)
    assert str(info.value) == f"{path}: train.lr: expected float, got 'fast'"


def test_type_error_in_override_names_the_override(cfg_file: Path):
    with pytest.raises(ConfigError) as info:
        load_config(Target, cfg_file, ["train.epochs=many"])
    assert str(info.value) == "train.epochs: expected int, got 'many' (in override 'train.epochs=many')"


@pytest.mark.parametrize(("data", "message"), [
    ({"train": {"epochs": True}}, "train.epochs: expected int, got True (true/false is not a number)"),
    ({"train": {"lr": False}}, "train.lr: expected float, got False"),
    ({"train": {"lr": "3e-4"}}, "train.lr: expected float, got '3e-4' (a string: write the number without quotes)"),
    ({"train": {"epochs": 2.5}}, "train.epochs: expected int, got 2.5"),
    ({"train": {"bf16": 1}}, "train.bf16: expected bool, got 1"),
    ({"train": {"warmup": "10"}}, "train.warmup: expected int or null, got '10'"),
    ({"train": {"layers": [1, "x"]}}, "train.layers[1]: expected int, got 'x'"),
    ({"train": {"layers": 3}}, "train.layers: expected list[int], got 3"),
    ({"train": {"optim": {"betas": [0.9, None]}}}, "train.optim.betas[1]: expected float, got None"),
    ({"train": {"optim": 5}}, "train.optim: expected a mapping (section Optim), got 5"),
    ({"train": {"strategy": "lroa"}}, "train.strategy: expected one of 'full', 'lora', got 'lroa'. Did you mean: lora?"),
    ({"train": {"optim": {"name": "adam"}}}, "train.optim.name: expected one of 'adamw', 'sgd', got 'adam'"),
    ({"seed": "1"}, "seed: expected int or null, got '1'"),
    ({"output_dir": 5}, "output_dir: expected path (a string), got 5"),
    ({"tags": {"a": 1}}, "tags.a: expected str, got 1 (an int: quote it to keep it a string, e.g. '1')"),
    ({"name": None}, "name: expected str, got None"),
])
def test_type_errors(data: dict, message: str):
    with pytest.raises(ConfigError) as info:
        config_from_dict(Target, {"name": "a", **data}, where="cfg.yaml")
    assert str(info.value).startswith(f"cfg.yaml: {message}")


def test_strings_are_not_numbers_in_yaml(tmp_path: Path):
    path = write(tmp_path, "name: a\ntrain:\n  epochs: '3'\n")
    with pytest.raises(ConfigError, match=r"train\.epochs: expected int, got '3'"):
        load_config(Target, path)


# --------------------------------------------------------------------------- unknown / missing keys


def test_unknown_key_in_override_did_you_mean(cfg_file: Path):
    with pytest.raises(ConfigError) as info:
        load_config(Target, cfg_file, ["train.lr_rate=1"])
    assert str(info.value) == (
        "unknown key 'train.lr_rate' (in override 'train.lr_rate=1'). Did you mean: lr? "
        "Valid keys under 'train': lr, epochs, strategy, warmup, layers, bf16, optim.")


def test_unknown_key_in_yaml_did_you_mean(tmp_path: Path):
    path = write(tmp_path, "name: a\ntrain:\n  optim:\n    weight_decy: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Target, path)
    assert str(info.value) == (
        f"{path}: unknown key 'train.optim.weight_decy'. Did you mean: weight_decay? "
        "Valid keys under 'train.optim': name, betas, weight_decay.")


def test_unknown_top_level_key():
    with pytest.raises(ConfigError) as info:
        load_config(Target, None, ["name=a", "sead=1"])
    message = str(info.value)
    assert "unknown key 'sead' (in override 'sead=1'). Did you mean: seed?" in message
    assert "Valid keys at the top level: name, output_dir, seed, tags, train." in message


def test_unknown_key_inside_section_override(cfg_file: Path):
    with pytest.raises(ConfigError) as info:
        load_config(Target, cfg_file, ["train={epoch: 2}"])
    assert str(info.value).startswith(
        "unknown key 'train.epoch' (in override 'train={epoch: 2}'). Did you mean: epochs?")


def test_unknown_key_without_close_match_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        config_from_dict(Target, {"name": "a", "train": {"zzz": 1}})
    assert "Did you mean" not in str(info.value)
    assert str(info.value) == ("config: unknown key 'train.zzz'. "
                               "Valid keys under 'train': lr, epochs, strategy, warmup, layers, bf16, optim.")


def test_override_into_a_non_section():
    with pytest.raises(ConfigError, match=r"override 'train\.lr\.x=1': 'train\.lr' is a float, not a section"):
        load_config(Target, None, ["name=a", "train.lr.x=1"])


def test_missing_required_field(tmp_path: Path):
    path = write(tmp_path, "train:\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Target, path)
    assert str(info.value).startswith(f"{path}: missing required key 'name' (no default)")
    assert "name=VALUE" in str(info.value)
    with pytest.raises(ConfigError, match=r"missing required key 'name'"):
        config_from_dict(Mutable, {})


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("text", ["train.lr", "=3", " =3", "train..lr=1", ".lr=1"])
def test_bad_override_form(text: str):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert f"override '{text}'" in str(info.value)
    assert "e.g. train.lr=3e-4" in str(info.value)
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(Target, None, ["name=a", text])


def test_invalid_override_yaml():
    with pytest.raises(ConfigError, match=r"override 'train\.layers=\[1, 2': invalid YAML"):
        parse_override("train.layers=[1, 2")


def test_yaml_top_level_not_mapping(tmp_path: Path):
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError) as info:
        load_config(Target, path)
    assert str(info.value) == f"{path}: the top level must be a mapping of keys to values, got list ['a', 'b']"
    with pytest.raises(ConfigError, match="^config: the top level must be a mapping"):
        config_from_dict(Target, ["a"])  # type: ignore[arg-type]


def test_invalid_yaml_names_file_and_line(tmp_path: Path):
    path = write(tmp_path, "name: a\ntrain:\n  lr: [1, 2\n  epochs: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(Target, path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid YAML at line ")
    line = int(message.split("at line ")[1].split(",")[0])
    assert 3 <= line <= 5


def test_duplicate_yaml_key_is_an_error(tmp_path: Path):
    path = write(tmp_path, "name: a\ntrain:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line 4, column 3: .*duplicate key 'lr'"):
        load_config(Target, path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Target, tmp_path / "nope.yaml")


def test_config_error_is_a_vidsme_error():
    assert issubclass(ConfigError, VidsmeError)


# --------------------------------------------------------------------------- round trip and hash


def test_round_trip(cfg_file: Path):
    cfg = load_config(Target, cfg_file, ["train.warmup=10", "tags.split=x"])
    data = config_to_dict(cfg)
    assert data["output_dir"] == "runs/mcqa" and data["train"]["optim"]["betas"] == [0.8, 0.99]
    assert json.loads(json.dumps(data)) == data  # plain JSON
    assert config_from_dict(Target, data) == cfg
    assert config_from_dict(Target, json.loads(json.dumps(data))) == cfg
    m = Mutable("m", (1, 2))
    assert config_from_dict(Mutable, config_to_dict(m)) == m


def test_config_hash_stable_and_sensitive():
    a = config_from_dict(Target, {"name": "a", "tags": {"x": "1", "y": "2"}, "train": {"lr": 0.1, "epochs": 2}})
    b = config_from_dict(Target, {"train": {"epochs": 2, "lr": 0.1}, "tags": {"y": "2", "x": "1"}, "name": "a"})
    h = config_hash(a)
    assert len(h) == 64 and int(h, 16) >= 0
    assert config_hash(b) == h
    assert config_hash(config_to_dict(a)) == h
    assert config_hash(Target(name="a", tags={"y": "2", "x": "1"}, train=Train(lr=0.1, epochs=2))) == h
    assert config_hash(config_from_dict(Target, {**config_to_dict(a), "seed": 1})) != h
    c = config_from_dict(Target, {"name": "a", "tags": {"x": "1", "y": "2"}, "train": {"lr": 0.1, "epochs": 3}})
    assert config_hash(c) != h


def test_post_init_value_error_names_section():
    with pytest.raises(ConfigError) as info:
        load_config(Outer, None, ["checked.low=5"])
    assert str(info.value) == "config: checked: low (5) must not exceed high (1) (after override 'checked.low=5')"
    with pytest.raises(ConfigError) as info:
        config_from_dict(Outer, {"checked": {"low": 3, "high": 2}}, where="x.yaml")
    assert str(info.value) == "x.yaml: checked: low (3) must not exceed high (2)"


def test_enum_and_optional_section():
    cfg = load_config(Outer, None, ["checked.precision=fp32", "extra.high=4"])
    assert cfg.checked.precision is Precision.FP32 and cfg.extra == Checked(high=4)
    assert config_to_dict(cfg)["checked"]["precision"] == "fp32"
    assert config_from_dict(Outer, config_to_dict(cfg)) == cfg
    assert load_config(Outer, None, ["extra.high=4", "extra=null"]).extra is None
    with pytest.raises(ConfigError, match=r"checked\.precision: expected one of 'bf16', 'fp32', got 'fp16'"):
        load_config(Outer, None, ["checked.precision=fp16"])


def test_literal_did_you_mean_in_override():
    with pytest.raises(ConfigError) as info:
        load_config(Target, None, ["name=a", "train.strategy=lroa"])
    assert str(info.value) == ("train.strategy: expected one of 'full', 'lora', got 'lroa' "
                               "(in override 'train.strategy=lroa'). Did you mean: lora?")


def test_unsupported_field_type_is_a_programming_error():
    @dataclass
    class Bad:
        x: set = field(default_factory=set)

    with pytest.raises(TypeError, match="unsupported config field type"):
        config_from_dict(Bad, {"x": [1]})


@dataclass(frozen=True)
class Item:
    name: str
    size: int = 1


@dataclass(frozen=True)
class Listed:
    items: list[Item]


def test_overrides_index_into_a_list_of_sections(tmp_path):
    path = tmp_path / "l.yaml"
    path.write_text("items:\n  - name: a\n  - name: b\n")
    cfg = load_config(Listed, path, ["items.1.size=5"])
    assert cfg.items == [Item("a", 1), Item("b", 5)]
    with pytest.raises(ConfigError, match=r"'items' has 2 entries, so there is no entry 2"):
        load_config(Listed, path, ["items.2.size=5"])
    with pytest.raises(ConfigError, match=r"Did you mean: size"):
        load_config(Listed, path, ["items.0.sise=5"])
    with pytest.raises(ConfigError, match=r"not a section"):
        load_config(Listed, path, ["items.x.size=5"])
