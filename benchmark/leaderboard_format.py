"""How the leaderboard writes numbers and notes: shared by its markdown and HTML pages and the study reports."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from vidsme.benchmark.results_schema import METRICS, ROW_IS_VIDEO, is_number

METRIC_LABELS = {"auc": "AUC", "balanced_accuracy": "bal. acc.", "tpr@0.1%fpr": "TPR@0.1%FPR",
                 "tpr@1%fpr": "TPR@1%FPR", "tpr@5%fpr": "TPR@5%FPR"}


def fmt_metric(metric: dict | None) -> str:
    """'0.931 [0.90, 0.95]', or 'n/a' for an unresolved (null) metric."""
    if not metric or metric.get("value") is None:
        return "n/a"
    return f"{metric['value']:.3f} [{metric['ci_low']:.2f}, {metric['ci_high']:.2f}]"


def fmt_diff(metric: dict | None) -> str:
    """'+0.123 [+0.05, +0.20]' (a paired difference), '—' for none."""
    if not metric or metric.get("value") is None:
        return "—"
    return f"{metric['value']:+.3f} [{metric['ci_low']:+.2f}, {metric['ci_high']:+.2f}]"


def level_label(level: str) -> str:
    """'row=video' -> 'row = video' (one row per video: both levels, the same numbers)."""
    return "row = video" if level == ROW_IS_VIDEO else level


def frames_text(n_frames: int | None) -> str:
    """A frame count, "—" for none."""
    return "—" if n_frames is None else str(n_frames)


def metric_label(metric: str) -> str:
    """A metric key as a column label: "tpr@1%fpr" -> "TPR@1%FPR"."""
    return METRIC_LABELS.get(metric, metric)


def na_legend(items: Iterable[dict], metrics: Sequence[str] = METRICS) -> list[str]:
    """One line per (metric, reason) that leaves a cell of `items` n/a, with where it applies:
    'TPR@1%FPR: needs ≥ 1000 non-members (has 48) — test, video level'."""
    where: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for item in items:
        for key in metrics:
            metric = item.get(key) or {}
            if metric.get("value") is None and metric.get("reason"):
                where.setdefault((key, metric["reason"]), set()).add((item["partition"], item["level"]))
    lines = []
    for (key, reason), contexts in sorted(where.items(), key=lambda kv: (metrics.index(kv[0][0]), kv[0][1])):
        parts = "; ".join(f"{p}, {level_label(lv)} level" for p, lv in sorted(contexts))
        lines.append(f"{metric_label(key)}: {reason} — {parts}")
    return lines


def main_na_legend(board: dict) -> list[str]:
    """The n/a legend of the main table, which shows each target's primary metric only."""
    return [f"{t['name']}: {x}" for t in board["targets"] for x in na_legend(t["entries"], (t["primary_metric"],))]


def levels_note(t: dict) -> str:
    """What the levels of a target mean (and that row = video is shown once)."""
    levels = t["target"].get("levels") or sorted({d["level"] for d in t["details"]})
    if ROW_IS_VIDEO in levels:
        return ("levels: row = video — every video has one QA row, so its row-level and video-level results are "
                "the same numbers, shown once with both labels")
    return f"levels: {', '.join(levels)} (video = the mean score of the video's QA rows)"


def selection_note(t: dict) -> str:
    """How the target's configurations were chosen (test-only targets: fixed beforehand elsewhere)."""
    if (t.get("partition") or {}).get("test_only"):
        return f"test-only target: every configuration was fixed beforehand ({t.get('selection_why')})"
    return f"configuration chosen on the dev partition by {metric_label(t.get('selection_metric') or 'auc')}: " \
           f"{t.get('selection_why')}"


def partition_note(t: dict) -> str:
    """The dev/test videos of a target, members and non-members."""
    videos = {side: v for side, v in ((t.get("partition") or {}).get("videos") or {}).items() if v}
    parts = [f"{side} {v.get('member')} member + {v.get('nonmember')} non-member videos"
             for side, v in sorted(videos.items()) if isinstance(v, dict)]
    return "partition: " + ("; ".join(parts) if parts else "not recorded")


def target_title(t: dict) -> str:
    """"name — task × strategy (split NAME vVERSION)"."""
    info = t["target"]
    split = info.get("split") or {}
    return (f"{t['name']} — {info.get('task')} × {info.get('strategy') or 'n/a'} "
            f"(split {split.get('name')} v{split.get('version')})")


def config_text(e: dict) -> str:
    """An entry's configuration: slice / attack / frames / level."""
    return f"{e['slice']} / {e['attack']} / {frames_text(e['n_frames'])} frames / {level_label(e['level'])} level"


CEILING = "ceiling"


def ceiling_note(t: dict) -> str | None:
    """"ceiling: METHOD — why" for a target whose verdict marks one (None otherwise)."""
    ceiling = t.get("ceiling")
    if not ceiling:
        return None
    return f"{CEILING}: {ceiling['method']} — {ceiling.get('why')}"


def shadows_note(t: dict) -> str | None:
    """The shadow models and population a target's calibrated attacks (LiRA, RMIA) used (None: it had none)."""
    calibration = t["target"].get("calibration")
    if not calibration:
        return None
    sets = [f"{s.get('count')} {s.get('setting')} shadows on halves of {(s.get('pool') or {}).get('name')} "
            f"({s.get('path')}, card sha256 {str(s.get('card_sha256'))[:12]})" for s in calibration.get("sets") or []]
    population = calibration.get("population")
    pop = (f"population {population.get('name')} ({population.get('n_videos')} videos)" if population
           else "no population (RMIA skipped)")
    return "shadow models: " + "; ".join(sets) + f"; {pop}"


def video_tied_note(t: dict) -> str | None:
    """The target's video-tied check in one sentence (None: results.json has none for it)."""
    record = t["target"].get("video_tied")
    return video_tied_text(record) if record else None


def video_tied_text(record: dict) -> str:
    """A video-tied record (benchmark/video_tied.py) in one sentence: the board's note and the terminal's line."""
    def ci(x: dict, sign: str = "") -> str:
        return f"{x['value']:{sign}.3f} [{x['ci_low']:{sign}.3f}, {x['ci_high']:{sign}.3f}]"

    gap = record["nonmember_swapped_minus_own_loss"]
    text = (f"video-tied: {'yes' if record['video_tied'] else 'no'} — answer-loss AUC with own videos "
            f"{ci(record['auc_own'])}, with videos swapped within label {ci(record['auc_swapped'])}, difference "
            f"{ci(record['difference'], '+')} (paired, CI over videos, {record['n_frames']} frames, all rows); "
            f"non-members' swapped-minus-own loss {gap['value']:+.4f} [{gap['ci_low']:+.4f}, {gap['ci_high']:+.4f}]")
    stripped = record.get("title_stripped")
    if stripped:
        text += (f"; title-stripped text: own {ci(stripped['auc_own'])}, swapped {ci(stripped['auc_swapped'])}, "
                 f"difference {ci(stripped['difference'], '+')}")
    return text


def entry_of(t: dict, method: str) -> dict | None:
    """The verdict entry of `method` on target `t` (None when it has none there)."""
    return next((e for e in t["entries"] if e["method"] == method), None)


def confidence_text(board: dict) -> str:
    """The CIs' confidence level as a percentage ("95%")."""
    conf = board["verdicts"].get("confidence")
    return f"{conf:.0%}" if is_number(conf) else "95%"
