"""The plugin contract: options come from the factory's signature, values are checked (never coerced), a
declaration that disagrees with its factory or a plugin that fails to import is shown as broken, and a name
conflict blocks only that name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from torch import nn

from sslkit import Component, UsageError, hookimpl
from sslkit.cli import main
from sslkit.registry import Provider, check_value, load_registry


class TinyEncoder(nn.Module):
    """An encoder whose options live only in its signature."""

    def __init__(
        self,
        in_chans: int,
        image_size: int,
        hidden: int = 16,
        scale: float = 1.0,
        mode: Literal["a", "b"] = "a",
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size**2, hidden))
        self.feature_dim, self.received = hidden, {"hidden": hidden, "scale": scale, "mode": mode}

    def forward(self, x):
        return self.net(x)


def _wrong_default(in_chans: int, image_size: int, hidden: int = 256) -> nn.Module:
    return TinyEncoder(in_chans, image_size, hidden)


def _unknown_option(in_chans: int, image_size: int) -> nn.Module:
    return TinyEncoder(in_chans, image_size)


class ThirdParty:
    @staticmethod
    @hookimpl
    def sslkit_encoders():
        return [
            Component("tiny", TinyEncoder, "options only in the signature"),
            Component(
                "says-16", _wrong_default, "declares hidden=16 while the factory builds 256", {"hidden": 16}
            ),
            Component("says-width", _unknown_option, "declares an option the factory lacks", {"width": 8}),
        ]


class Impostor:
    @staticmethod
    @hookimpl
    def sslkit_datasets():
        return [Component("digits", lambda root, download: None, "another digits")]


@pytest.fixture(scope="module")
def registry():
    return load_registry(
        extra_plugins=[
            (ThirdParty(), Provider("third", "dist-third", "1.0")),
            (Impostor(), Provider("imp", "dist-imp", "2.0")),
        ]
    )


def test_options_and_their_types_come_from_the_factory_signature(registry) -> None:
    entry = registry.get("encoder", "tiny")
    assert {k: o.default for k, o in entry.options.items()} == {"hidden": 16, "scale": 1.0, "mode": "a"}
    encoder = registry.build("encoder", "tiny", 1, 8, options={"hidden": 4, "scale": 2, "mode": "b"})
    assert encoder.received == {"hidden": 4, "scale": 2.0, "mode": "b"}
    assert isinstance(encoder.received["scale"], float)  # an int given for a float option arrives as a float


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"hidden": 2.5}, "tiny.hidden must be an integer, got 2.5"),
        ({"hidden": True}, "tiny.hidden must be an integer, got True"),
        ({"hidden": "3"}, "tiny.hidden must be an integer, got '3'"),
        ({"scale": "big"}, "tiny.scale must be a number, got 'big'"),
        ({"mode": "c"}, "tiny.mode must be one of 'a', 'b', got 'c'"),
        ({"hiden": 3}, "no option 'hiden' (did you mean 'hidden'?)"),
    ],
)
def test_wrong_typed_options_are_one_line_errors(registry, options, expected) -> None:
    with pytest.raises(
        UsageError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
    ):
        registry.build("encoder", "tiny", 1, 8, options=options)


def test_value_checks_follow_the_hints() -> None:
    assert check_value(None, int | None, "x") is None
    assert check_value([1, 2], list[int], "x") == [1, 2]
    assert check_value((0.1, 1), tuple[float, ...], "x") == (0.1, 1.0)
    with pytest.raises(UsageError, match="must be true or false, got 'no'"):
        check_value("no", bool, "x")
    with pytest.raises(UsageError, match="must be a list"):
        check_value(3, list[int], "x")


def test_a_declaration_that_disagrees_with_its_factory_is_broken_at_load(registry) -> None:
    broken = {b.error for b in registry.broken}
    assert any("'says-16'" in e and "default 16 but the factory's default is 256" in e for e in broken)
    assert any("'says-width'" in e and "'width' is not a parameter of the factory" in e for e in broken)
    with pytest.raises(UsageError, match="unknown encoder 'says-16'"):
        registry.get("encoder", "says-16")


def test_a_name_conflict_blocks_only_that_name_and_says_it_hides_the_builtin(registry) -> None:
    with pytest.raises(
        UsageError, match=r"dataset 'digits' is provided twice.*it hides the built-in dataset 'digits'"
    ):
        registry.get("dataset", "digits")
    assert registry.get("dataset", "mnist").name == "mnist"
    with pytest.raises(UsageError, match="hidden by a name conflict: dataset 'digits'"):
        registry.get("dataset", "digitz")


def test_prefixed_names_and_offline_options_are_declared_by_the_component(registry) -> None:
    timm = registry.get("encoder", "timm:resnet18")
    assert timm.name == "timm" and timm.component.prefix_option == "model_name"
    assert timm.component.offline_options == {"pretrained": False}
    assert registry.get("encoder", "convnet").component.offline_options == {}


def test_a_plugin_that_fails_to_import_shows_its_traceback_under_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    package = tmp_path / "sslkit_broken_demo"
    package.mkdir()
    (package / "__init__.py").write_text("import math\n\nVALUE = math.sqrt(-1)  # fails on import\n")
    dist = tmp_path / "sslkit_broken_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sslkit-broken-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sslkit]\nbroken-demo = sslkit_broken_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "import failed: ValueError: math domain error" in out and "--debug" in out
    assert main(["plugins", "--debug"]) == 0
    err = capsys.readouterr().err
    assert "sslkit_broken_demo/__init__.py" in err and "line 3" in err and "math.sqrt(-1)" in err


def test_config_json_records_the_values_the_factory_received(tmp_path: Path) -> None:
    argv = [
        "run",
        "--data",
        "digits",
        "--pretext",
        "rotation",
        "--epochs",
        "0",
        "--eval",
        "linear",
        "--no-baselines",
    ]
    argv += [
        "--tsne-points",
        "0",
        "--encoder-opt",
        "width=8",
        "--eval-opt",
        "linear.c_grid=[1]",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (run_dir,) = (p for p in tmp_path.iterdir() if (p / "config.json").exists())
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["eval_options"]["linear"]["c_grid"] == [1.0]  # [1] given, floats received
    assert config["encoder"] == "convnet" and config["encoder_options"] == {"width": 8}


def test_pretexts_declare_why_they_refuse_torchrun(registry) -> None:
    sgan = registry.get("pretext", "sgan").component.factory
    assert "backward passes" in sgan.ddp_refusal
    assert registry.get("pretext", "simclr").component.factory.ddp_refusal is None
