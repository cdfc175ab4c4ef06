"""Attack registry: listing, did-you-mean, third-party registration, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import vidsme.attack.registry as registry
from vidsme.attack import AttackInputs, Direction, get_attack, list_attacks, load_attack_source, register_attack
from vidsme.cli import main
from vidsme.errors import InvalidScoresError, MissingFeatureError, UnknownNameError, VidsmeError

FAMILIES = {"vid_sme", "loss", "min_k_prob", "min_k_plus_plus", "renyi", "modified_entropy", "max_prob_gap", "zlib",
            "reference"}


@pytest.fixture
def clean_registry():
    """Let a test register attacks without leaking them into other tests."""
    list_attacks()  # load built-ins first so the snapshot has them
    saved = dict(registry._REGISTRY)
    saved_flags = (registry._BUILTINS_LOADED, registry._PLUGINS_LOADED)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    registry._BUILTINS_LOADED, registry._PLUGINS_LOADED = saved_flags


def _inputs(n: int = 3) -> AttackInputs:
    values = torch.arange(n * 4, dtype=torch.float32).view(n, 4)
    return AttackInputs(
        slice="answer",
        sample_ids=tuple(f"s{i}" for i in range(n)),
        mask=torch.ones(n, 4, dtype=torch.bool),
        token={"natural.entropy": values, "natural.target_logprob": -values},
    )


def test_every_family_is_listed_with_complete_metadata():
    specs = list_attacks()
    assert {s.family for s in specs} >= FAMILIES
    assert len({s.name for s in specs}) == len(specs)
    for s in specs:
        assert s.citation and s.summary and s.needs and s.slices, s.name
        assert isinstance(s.direction, Direction)


def test_unknown_attack_gets_did_you_mean():
    with pytest.raises(UnknownNameError, match=r"Did you mean: .*vid_sme_mean"):
        get_attack("vid_sme_maen")
    with pytest.raises(UnknownNameError, match=r"Did you mean: .*renyi"):
        list_attacks(family="reny")


def test_register_by_file_path(tmp_path: Path, clean_registry):
    src = tmp_path / "my_attacks.py"
    src.write_text(
        textwrap.dedent(
            '''
            from vidsme.attack import Direction, register_attack
            from vidsme.attack.aggregate import masked_mean

            @register_attack("third_party_entropy", direction=Direction.LOWER,
                             needs=("natural.entropy",), citation="Doe et al. 2026")
            def third_party_entropy(inputs):
                """Mean entropy, from a file outside the repository."""
                return masked_mean(inputs.tokens("natural.entropy"), inputs.mask)
            '''
        )
    )
    assert load_attack_source(str(src)) == ["third_party_entropy"]
    spec = get_attack("third_party_entropy")
    assert spec.summary == "Mean entropy, from a file outside the repository."
    np.testing.assert_allclose(spec.score(_inputs()), [1.5, 5.5, 9.5])


def test_register_by_module_path(tmp_path: Path, clean_registry, monkeypatch):
    pkg = tmp_path / "acme_mia"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "attacks.py").write_text(
        textwrap.dedent(
            """
            from vidsme.attack import register_attack
            @register_attack("acme_loss", direction="lower", needs=("natural.target_logprob",), citation="ACME")
            def acme_loss(inputs):
                '''Negated mean log-likelihood.'''
                return -inputs.tokens("natural.target_logprob").double().mean(1)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_attack_source("acme_mia.attacks") == ["acme_loss"]
    assert get_attack("acme_loss").direction is Direction.LOWER


def _install_fake_plugin(root: Path, module_body: str, monkeypatch) -> None:
    """A minimal installed distribution exposing the `vidsme.attacks` entry point."""
    monkeypatch.delitem(sys.modules, "fake_vidsme_plugin_mod", raising=False)
    monkeypatch.syspath_prepend(str(root))
    dist = root / "fake_vidsme_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-vidsme-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vidsme.attacks]\nfake = fake_vidsme_plugin_mod\n")
    (root / "fake_vidsme_plugin_mod.py").write_text(textwrap.dedent(module_body))


def test_register_through_entry_point(tmp_path: Path, clean_registry, monkeypatch):
    _install_fake_plugin(
        tmp_path,
        """
        from vidsme.attack import register_attack
        @register_attack("plugin_attack", direction="higher", needs=("natural.entropy",), citation="Plugin 2026")
        def plugin_attack(inputs):
            '''Max entropy.'''
            return inputs.tokens("natural.entropy").amax(1)
        """,
        monkeypatch,
    )
    registry._PLUGINS_LOADED = False
    names = {s.name for s in list_attacks()}
    assert "plugin_attack" in names
    assert get_attack("plugin_attack").source == "fake_vidsme_plugin_mod"


def test_broken_plugin_names_itself(tmp_path: Path, clean_registry, monkeypatch):
    _install_fake_plugin(tmp_path, "raise RuntimeError('boom')\n", monkeypatch)
    registry._PLUGINS_LOADED = False
    with pytest.raises(VidsmeError, match=r"plugin 'fake'.*fake-vidsme-plugin.*boom"):
        list_attacks()


def test_registration_validates_its_declaration(clean_registry):
    with pytest.raises(MissingFeatureError, match=r"Did you mean: natural.entropy"):
        register_attack("x", direction="lower", needs=("natural.entropi",), citation="c")
    with pytest.raises(VidsmeError, match="unknown slices"):
        register_attack("x", direction="lower", needs=("natural.entropy",), citation="c", slices=("audio",))
    with pytest.raises(ValueError):
        register_attack("x", direction="sideways", needs=("natural.entropy",), citation="c")


def test_same_name_from_another_module_is_refused(clean_registry):
    def fn(inputs):
        return np.zeros(inputs.n)

    fn.__module__ = "somebody_else"
    with pytest.raises(VidsmeError, match="registered twice"):
        register_attack("loss", direction="lower", needs=("natural.target_logprob",), citation="c")(fn)


def test_wrong_score_shape_is_an_error(clean_registry):
    @register_attack("bad_shape", direction="lower", needs=("natural.entropy",), citation="c")
    def bad_shape(inputs):
        """Returns per-token values instead of per-sample scores."""
        return inputs.tokens("natural.entropy")

    with pytest.raises(InvalidScoresError, match=r"'bad_shape' returned shape \(3, 4\)"):
        get_attack("bad_shape").score(_inputs())


def test_missing_feature_is_named():
    with pytest.raises(MissingFeatureError, match=r"needs \['natural.mink_pp_z'\]"):
        get_attack("min_k_pp_k10").score(_inputs())


def test_cli_lists_every_attack(capsys):
    assert main(["attacks"]) == 0
    out = capsys.readouterr().out
    for spec in list_attacks():
        assert spec.name in out
    assert f"{len(list_attacks())} attacks in" in out


def test_cli_details_json_and_typos(capsys):
    assert main(["attacks", "vid_sme_mean"]) == 0
    assert "direction: lower" in capsys.readouterr().out
    assert main(["attacks", "--json", "--family", "loss"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["loss"]
    assert main(["attacks", "vid_sme_maen"]) == 2
    assert "Did you mean" in capsys.readouterr().err


def test_console_script_and_namespace(tmp_path: Path):
    """The installed `vidsme` works from anywhere; no generic top-level module is installed."""
    exe = Path(sys.executable).with_name("vidsme")
    result = subprocess.run([str(exe), "attacks", "--family", "vid_sme"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "vid_sme_sequence" in result.stdout
    probe = "import importlib.util as u; print([u.find_spec(n) is None for n in ('attack', 'train', 'benchmark')])"
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert found.stdout.strip() == "[True, True, True]", found.stdout + found.stderr


def test_a_scalar_is_not_one_score_per_sample(clean_registry):
    @register_attack("scalar_score", direction="lower", needs=("natural.entropy",), citation="c")
    def scalar_score(inputs):
        """Returns a single number whatever N is."""
        return torch.tensor(1.0)

    one = AttackInputs(slice="answer", sample_ids=("a",), mask=torch.ones(1, 2, dtype=torch.bool),
                       token={"natural.entropy": torch.zeros(1, 2)})
    with pytest.raises(InvalidScoresError, match="one score per sample"):
        get_attack("scalar_score").score(one)
