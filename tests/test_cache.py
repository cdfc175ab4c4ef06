"""Feature cache: round trip, crash safety, key invalidation, rank merge."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from vidsme.benchmark.cache import CacheKey, FeatureCache, SampleFeatures
from vidsme.errors import VidsmeError

KEY = CacheKey(target_card_sha256="a" * 64, split="synth-mcqa", split_version=1, manifest_sha256="b" * 64,
               n_frames=8, template="default", beta1=1.0, beta2=0.1, slices=("video", "answer"),
               views=("natural", "reversed"), orders_sha256="e" * 64, batch_size=4, dtype="float32",
               device_type="cpu")


def _sample(i: int) -> SampleFeatures:
    g = torch.Generator().manual_seed(i)
    return SampleFeatures(
        sample_id=f"s{i}",
        token={"video": {"natural.sharma_mittal": torch.rand(5, generator=g),
                         "reversed.sharma_mittal": torch.rand(5, generator=g)},
               "answer": {"natural.target_logprob": -torch.rand(3, generator=g)}},
        sequence={"video": {"natural.sequence_sharma_mittal": float(i) + 0.5}},
        frame_slot=[0, 0, 1, 1, -1],
        texts={"answer": f"answer {i}"},
    )


def _equal(a: SampleFeatures, b: SampleFeatures) -> bool:
    return (a.sample_id, a.sequence, a.frame_slot, a.texts) == (b.sample_id, b.sequence, b.frame_slot, b.texts) and all(
        torch.equal(a.token[s][k], b.token[s][k]) for s in a.token for k in a.token[s])


def test_round_trip_in_manifest_order(tmp_path):
    cache = FeatureCache(tmp_path, KEY)
    cache.write([_sample(0), _sample(1)], batch=0)
    cache.write([_sample(2)], batch=1)
    order = ["s2", "s0", "s1"]
    back = FeatureCache(tmp_path, KEY).read(order)
    assert [s.sample_id for s in back] == order
    assert all(_equal(b, _sample(int(b.sample_id[1:]))) for b in back)
    assert cache.done_ids() == {"s0", "s1", "s2"} and cache.done_batches() == {0, 1}


def test_a_shard_without_its_metadata_does_not_count(tmp_path):
    cache = FeatureCache(tmp_path, KEY)
    cache.write([_sample(0)], batch=0)
    stem = cache.write([_sample(1)], batch=1)
    stem.with_suffix(".json").unlink()  # killed between the two writes
    assert cache.done_ids() == {"s0"} and cache.done_batches() == {0}
    with pytest.raises(VidsmeError, match=r"lacks 1 sample\(s\) \(e.g. s1\)"):
        cache.read(["s0", "s1"])
    cache.write([_sample(1)], batch=1)  # the rerun writes it again, over the orphan
    assert [s.sample_id for s in cache.read(["s0", "s1"])] == ["s0", "s1"]


def test_any_key_change_is_a_new_cache(tmp_path):
    FeatureCache(tmp_path, KEY).write([_sample(0)], batch=0)
    for change in ({"beta1": 0.5}, {"n_frames": 16}, {"template": "reference"}, {"manifest_sha256": "c" * 64},
                   {"target_card_sha256": "d" * 64}, {"features_version": 99}, {"orders_sha256": "f" * 64},
                   {"batch_size": 8}, {"dtype": "bfloat16"}, {"reference_sha256": "0" * 64}):
        other = FeatureCache(tmp_path, dataclasses.replace(KEY, **change))
        assert other.folder != FeatureCache(tmp_path, KEY).folder and other.done_ids() == set(), change


def test_ranks_merge_to_the_single_process_result(tmp_path):
    one = FeatureCache(tmp_path / "one", KEY)
    one.write([_sample(0), _sample(1)], batch=0)
    one.write([_sample(2), _sample(3)], batch=1)
    two = FeatureCache(tmp_path / "two", KEY)
    two.write([_sample(2), _sample(3)], batch=1)  # rank 1 may finish first
    two.write([_sample(0), _sample(1)], batch=0)
    order = [f"s{i}" for i in range(4)]
    assert all(_equal(a, b) for a, b in zip(one.read(order), two.read(order)))


def test_conflicting_duplicates_are_an_error(tmp_path):
    cache = FeatureCache(tmp_path, KEY)
    cache.write([_sample(0)], batch=0)
    cache.write([_sample(0)], batch=1)  # identical duplicate: fine
    cache.read(["s0"])
    changed = _sample(0)
    changed.sequence = {"video": {"natural.sequence_sharma_mittal": 9.0}}
    cache.write([changed], batch=2)
    with pytest.raises(VidsmeError, match="stored twice with different values"):
        cache.read(["s0"])
