"""AttackInputs and friends refuse malformed inputs with errors that name the problem."""
from __future__ import annotations

import pytest
import torch

from vidsme.attack import AttackInputs, get_attack, load_attack_source
from vidsme.attack.features import sequence_sharma_mittal
from vidsme.errors import MissingFeatureError, VidsmeError


def _mask(rows: list[list[bool]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def test_a_sample_with_an_empty_slice_is_named():
    with pytest.raises(VidsmeError, match=r"slice 'answer' has no positions for 1 sample\(s\) \(q_17\)"):
        AttackInputs(slice="answer", sample_ids=("q_3", "q_17"), mask=_mask([[True, False], [False, False]]))


def test_unknown_slice_and_feature_get_did_you_mean():
    with pytest.raises(VidsmeError, match="Did you mean: video"):
        AttackInputs(slice="vidoe", sample_ids=("a",), mask=_mask([[True]]))
    with pytest.raises(MissingFeatureError, match="Did you mean: natural.entropy"):
        AttackInputs(slice="video", sample_ids=("a",), mask=_mask([[True]]), token={"natural.entropie": torch.zeros(1, 1)})


def test_shapes_must_agree():
    mask = _mask([[True, True]])
    with pytest.raises(VidsmeError, match="feature 'natural.entropy' has shape"):
        AttackInputs(slice="video", sample_ids=("a",), mask=mask, token={"natural.entropy": torch.zeros(1, 3)})
    with pytest.raises(VidsmeError, match="expected \\(1,\\)"):
        AttackInputs(slice="video", sample_ids=("a",), mask=mask,
                     sequence={"natural.sequence_sharma_mittal": torch.zeros(2)})
    with pytest.raises(VidsmeError, match="2 texts for 1 samples"):
        AttackInputs(slice="answer", sample_ids=("a",), mask=mask, texts=("x", "y"))
    with pytest.raises(VidsmeError, match="bool"):
        AttackInputs(slice="video", sample_ids=("a",), mask=torch.ones(1, 2))


def test_video_slice_without_frame_positions_is_named():
    inputs = AttackInputs(
        slice="video",
        sample_ids=("clip_9",),
        mask=_mask([[True, True]]),
        token={"natural.sharma_mittal": torch.zeros(1, 2), "reversed.sharma_mittal": torch.zeros(1, 2)},
        frame_slot=torch.tensor([[-1, -1]]),
    )
    with pytest.raises(VidsmeError, match="'clip_9': no frame positions"):
        get_attack("vid_sme_frame_mean").score(inputs)


def test_sequence_sharma_mittal_rejects_bad_distributions():
    q, r = torch.tensor([1.5]), torch.tensor([1.05])
    with pytest.raises(ValueError, match="non-negative"):
        sequence_sharma_mittal(torch.tensor([[0.5, -0.1, 0.6]]), q, r)
    with pytest.raises(ValueError, match="sums to zero"):
        sequence_sharma_mittal(torch.zeros(1, 3), q, r)


def test_loading_attacks_from_a_bad_source_names_it(tmp_path):
    with pytest.raises(VidsmeError, match="does not exist"):
        load_attack_source(str(tmp_path / "missing.py"))
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_real_module_xyz\n")
    with pytest.raises(VidsmeError, match=r"broken.py.*not_a_real_module_xyz"):
        load_attack_source(str(broken))
    with pytest.raises(VidsmeError, match="no_such_pkg_abc"):
        load_attack_source("no_such_pkg_abc.attacks")
