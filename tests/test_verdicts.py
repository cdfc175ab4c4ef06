"""Verdicts: dev selection / test report, rank intervals from paired bootstraps, the blind comparison."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsme.benchmark.evaluate import EvalSet, evaluate_level_scores
from vidsme.benchmark.suite import metric_row, scores_path, write_scores_csv
from vidsme.benchmark.verdicts import (
    BLIND_METHOD,
    NOT_ABOVE_BLIND,
    band_label,
    compute_verdicts,
    paired_test_difference,
    rank_intervals,
    resolve_primary,
    select_on_dev,
)
from vidsme.data_splits.partition import draw_partition
from vidsme.errors import VidsmeError

N_BOOT = 200


def _evalset(n_videos: int, rows_per_video: int, seed: int = 0) -> EvalSet:
    rows = [{"id": f"v{v:03d}-q{q}", "video": f"v{v:03d}.mp4", "label": "member" if v % 2 else "nonmember"}
            for v in range(n_videos) for q in range(rows_per_video)]
    partition = draw_partition(rows, seed)
    return EvalSet(ids=[r["id"] for r in rows], videos=[r["video"] for r in rows],
                   labels=np.array([r["label"] == "member" for r in rows], dtype=int),
                   partitions=partition.of_rows(rows))


def _results(tmp_path: Path, samples: EvalSet, attacks: dict[str, tuple[str, np.ndarray]], *,
             blind: np.ndarray | None = None, primary: str = "tpr@1%fpr") -> dict:
    """results.json content for one target "t": `attacks` maps name -> (family, row scores, higher = member)."""
    rows, columns = [], {level: {} for level in samples.levels}
    meta_of = {}
    for name, (family, scores) in attacks.items():
        meta = {"name": name, "family": family, "version": 1, "source": "tests"}
        meta_of[name] = {**meta, "direction": "higher"}
        for level, view in samples.views.items():
            level_scores = samples.at_level(scores, level)
            columns[level][f"answer/{name}"] = level_scores
            for part in ("dev", "test"):
                ev = evaluate_level_scores(level_scores, view, part, direction="higher", attack=name,
                                           n_bootstrap=N_BOOT, seed=0)
                rows.append(metric_row("t", meta, "reproduced", "answer", level, 8, part, ev,
                                       scores_path("t", 8, level), f"answer/{name}", None))
    for level, view in samples.views.items():
        write_scores_csv(tmp_path / scores_path("t", 8, level), view, columns[level])
    if blind is not None:
        meta = {"name": "blind_baseline", "family": "blind", "version": 2, "source": "tests"}
        for level, view in samples.views.items():
            level_scores = samples.at_level(blind, level)
            rel = f"scores/t/blind-{level}.csv"
            write_scores_csv(tmp_path / rel, view, {"metadata/blind_baseline": level_scores})
            for part in ("dev", "test"):
                ev = evaluate_level_scores(level_scores, view, part, direction="higher", attack="blind_baseline",
                                           n_bootstrap=N_BOOT, seed=0)
                rows.append(metric_row("t", meta, "blind", "metadata", level, None, part, ev, rel,
                                       "metadata/blind_baseline", None))
    split_rows = [{"id": i, "video": v, "label": "member" if y else "nonmember"}
                  for i, v, y in zip(samples.ids, samples.videos, samples.labels)]
    record = draw_partition(split_rows).record(split_rows)
    return {"suite": {"config": {"n_bootstrap": N_BOOT, "seed": 0, "primary_metric": primary}},
            "targets": [{"name": "t", "partition": record, "levels": list(samples.levels)}],
            "attacks": meta_of, "rows": rows}


def _above(n: int, pairs: set[tuple[int, int]]) -> list[list[bool]]:
    return [[(i, j) in pairs for j in range(n)] for i in range(n)]


def test_rank_intervals_count_the_entries_significantly_above_and_below():
    assert rank_intervals(_above(1, set())) == [(1, 1)]
    assert rank_intervals(_above(3, {(0, 1), (0, 2), (1, 2)})) == [(1, 1), (2, 2), (3, 3)]
    assert rank_intervals(_above(3, set())) == [(1, 3)] * 3
    # a chain of small steps: neighbours indistinguishable, but the ends are, and keep apart
    got = rank_intervals(_above(4, {(0, 3)}))
    assert got == [(1, 3), (1, 4), (1, 4), (2, 4)]
    assert [band_label(b) for b in got] == ["1–3", "1–4", "1–4", "2–4"]
    # non-transitive significance is tightened: 0 > 1 and 1 > 2 put 2 below 0's every possible rank
    assert rank_intervals(_above(3, {(0, 1), (1, 2)})) == [(1, 1), (2, 2), (3, 3)]


def test_many_entries_in_small_steps_never_share_a_label_with_one_they_beat(tmp_path):
    """The real-footage case: ten methods whose test AUCs step down a little at a time from ~0.8 to
    chance, and the blind baseline. Adjacent bands chained them into one band ("1–10") beside a
    +0.3 [+0.2, +0.4] distance to blind; intervals do not."""
    samples = _evalset(120, 1)
    rng = np.random.default_rng(11)
    attacks = {f"m{i}": (f"m{i}", (1.6 - 0.16 * i) * samples.labels + rng.normal(size=len(samples.ids)))
               for i in range(10)}
    results = _results(tmp_path, samples, attacks, blind=rng.normal(size=len(samples.ids)))
    verdict = compute_verdicts(results, tmp_path)["targets"][0]
    entries = verdict["entries"]
    assert all(not a["distinguishable"] for a in verdict["adjacent"][:3])  # small steps near the top
    best, blind = entries[0], next(e for e in entries if e["method"] == BLIND_METHOD)
    assert best["above_blind"] and best["rank_band"] != blind["rank_band"]
    checked = 0
    for a in entries:
        for b in entries:
            diff = (paired_test_difference({**a, "target": "t"}, {**b, "target": "t"}, tmp_path, n_bootstrap=N_BOOT, seed=0, metric=verdict["primary_metric"])
                    if a is not b else None)
            if diff is not None and diff["ci_low"] > 0:
                assert a["rank_band"] != b["rank_band"] and a["band"][0] < b["band"][0], (a["method"], b["method"])
                checked += 1
    assert checked > 10


def test_primary_metric_falls_back_to_auc_with_the_reason():
    assert resolve_primary("tpr@1%fpr", 1000)[0] == "tpr@1%fpr"
    metric, why = resolve_primary("tpr@1%fpr", 999)
    assert metric == "auc" and "999 non-member videos" in why and "1000" in why
    assert resolve_primary("tpr@5%fpr", 200)[0] == "tpr@5%fpr"
    assert resolve_primary("auc", 3)[0] == "auc"
    with pytest.raises(VidsmeError, match="unknown primary_metric"):
        resolve_primary("tpr@2%fpr", 5000)


def test_selection_is_deterministic_on_ties():
    def row(attack, auc, frames):
        return {"attack": attack, "slice": "answer", "level": "row", "n_frames": frames, "auc": {"value": auc}}
    rows = [row("b", 0.7, 8), row("a", 0.7, 16), row("a", 0.7, 8), row("c", 0.6, 4)]
    assert select_on_dev(rows, "auc") == rows[2]  # best value; ties by attack name, then frame count
    assert select_on_dev(list(reversed(rows)), "auc") == rows[2]


def test_winners_curse_is_not_reported(tmp_path):
    """60 variants of pure noise: the best of them ON TEST looks like an attack; the dev-selected
    representative, reported on test, does not, and is not above the blind baseline."""
    samples = _evalset(120, 1)
    rng = np.random.default_rng(3)
    attacks = {f"noise_{i:02d}": ("noise", rng.normal(size=len(samples.ids))) for i in range(60)}
    results = _results(tmp_path, samples, attacks, blind=rng.normal(size=len(samples.ids)))
    test_aucs = [r["auc"]["value"] for r in results["rows"] if r["partition"] == "test" and r["kind"] != "blind"]
    assert max(test_aucs) > 0.63  # what "best of many on the reported samples" would print
    verdict = compute_verdicts(results, tmp_path)["targets"][0]
    (noise,) = [e for e in verdict["entries"] if e["method"] == "noise"]
    chosen_dev = next(r for r in results["rows"] if r["attack"] == noise["attack"] and r["partition"] == "dev")
    assert noise["dev"]["auc"] == chosen_dev["auc"]  # chosen by its dev number...
    assert noise["auc"]["value"] < max(test_aucs)  # ...reported by its test number
    assert noise["auc"]["ci_low"] < 0.5 < noise["auc"]["ci_high"]
    assert noise["above_blind"] is False and noise["flag"] == NOT_ABOVE_BLIND
    assert noise["n_candidates"] == 60 and noise["partition"] == "test"
    assert {e["rank_band"] for e in verdict["entries"]} == {"1–2"}  # noise and blind: indistinguishable


def test_a_real_signal_ranks_first_and_is_above_blind(tmp_path):
    samples = _evalset(160, 2)  # two rows per video: row and video levels differ
    assert samples.levels == ("row", "video")
    rng = np.random.default_rng(4)
    signal = 1.5 * samples.labels + rng.normal(size=len(samples.ids))
    attacks = {"strong": ("strong", signal), "weak": ("weak", 0.4 * samples.labels + rng.normal(size=len(signal))),
               "noise": ("noise", rng.normal(size=len(signal)))}
    results = _results(tmp_path, samples, attacks, blind=rng.normal(size=len(signal)))
    verdicts = compute_verdicts(results, tmp_path)
    verdict = verdicts["targets"][0]
    order = [e["method"] for e in verdict["entries"]]
    assert order[0] == "strong" and verdict["entries"][0]["rank_band"] == "1"
    strong = verdict["entries"][0]
    assert strong["above_blind"] is True and strong["flag"] is None and strong["vs_blind"]["ci_low"] > 0
    blind = next(e for e in verdict["entries"] if e["method"] == BLIND_METHOD)
    assert blind["level"] == "video" and blind["vs_blind"] is None
    assert verdict["adjacent"][0]["higher"] == "strong" and verdict["adjacent"][0]["distinguishable"]
    # 80 test non-member videos resolve no TPR@1%: AUC ranks, and the record says why
    assert verdict["primary_metric"] == "auc" and verdict["declared_metric"] == "tpr@1%fpr"
    assert strong["tpr@1%fpr"]["value"] is None and "needs ≥ 1000" in strong["tpr@1%fpr"]["reason"]


def test_scores_files_must_reproduce_results(tmp_path):
    samples = _evalset(40, 1)
    rng = np.random.default_rng(5)
    results = _results(tmp_path, samples, {"a": ("a", rng.normal(size=40))})
    next(r for r in results["rows"] if r["partition"] == "test")["auc"]["value"] += 0.01
    with pytest.raises(VidsmeError, match="do not belong together"):
        compute_verdicts(results, tmp_path)
    (tmp_path / scores_path("t", 8, "row=video")).unlink()
    with pytest.raises(VidsmeError, match="not found"):
        compute_verdicts(results, tmp_path)


def test_the_ceiling_is_chosen_on_dev_never_the_blind_baseline(tmp_path):
    """The ceiling is the method with the best DEV selection metric, even where another method is better on
    test; the blind baseline is never it."""
    samples = _evalset(160, 1)
    rng = np.random.default_rng(5)
    dev = np.array([p == "dev" for p in samples.partitions])
    labels = samples.labels
    # 'dev_only' separates members on dev and is noise on test; 'steady' is a moderate signal on both
    dev_only = np.where(dev, 3.0 * labels, 0.0) + rng.normal(size=len(labels))
    steady = 1.0 * labels + rng.normal(size=len(labels))
    blind = 5.0 * labels + rng.normal(size=len(labels))  # a leaky split: the blind baseline is best of all
    results = _results(tmp_path, samples, {"dev_only": ("dev_only", dev_only), "steady": ("steady", steady)},
                       blind=blind)
    verdict = compute_verdicts(results, tmp_path)["targets"][0]
    entries = {e["method"]: e for e in verdict["entries"]}
    assert entries["dev_only"]["dev"]["auc"]["value"] > entries["steady"]["dev"]["auc"]["value"]
    assert entries["dev_only"]["auc"]["value"] < entries["steady"]["auc"]["value"]  # worse where it is reported
    assert verdict["ceiling"]["method"] == "dev_only" and verdict["ceiling"]["selected_on"] == "dev"
    assert [e["method"] for e in verdict["entries"] if e["ceiling"]] == ["dev_only"]
    assert entries[BLIND_METHOD]["ceiling"] is False
