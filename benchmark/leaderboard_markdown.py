"""leaderboard.md: the leaderboard (`build_leaderboard`'s board) as markdown."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from vidsme.benchmark.leaderboard_format import (
    CEILING,
    ceiling_note,
    confidence_text,
    entry_of,
    fmt_diff,
    fmt_metric,
    frames_text,
    level_label,
    levels_note,
    main_na_legend,
    metric_label,
    na_legend,
    partition_note,
    selection_note,
    shadows_note,
    target_title,
    video_tied_note,
)
from vidsme.benchmark.results_schema import METRICS
from vidsme.benchmark.verdicts import BLIND_METHOD, NOT_ABOVE_BLIND
from vidsme.text_formats import markdown_text

def _md_text(value: object) -> str:
    # a "|", a newline or a carriage return from a name would add a row or a heading; "<", "&" would be markup
    return markdown_text(value)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _md_rank(e: dict) -> str:
    return e["rank_band"] + (f" **{CEILING}**" if e.get("ceiling") else "")


def _md_vs_blind(e: dict | None) -> str:
    if e is None:
        return "—"
    if e["blind"]:
        return f"reference: {e['slice']}"
    text = fmt_diff(e.get("vs_blind"))
    return text + (f" **{_md_text(e['flag'])}**" if e.get("flag") else "")


def render_markdown(board: dict) -> str:
    """leaderboard.md: provenance and protocol, the main table, per target the chosen
    configurations, then every row of every target in a details section."""
    prov, conf = board["provenance"], confidence_text(board)
    lines = [
        f"# vidsme leaderboard — suite {_md_text(board['suite']['name'])}",
        "",
        f"- created: {_md_text(prov.get('created'))}; vidsme {_md_text(prov.get('vidsme'))}; "
        f"git commit {_md_text(prov.get('git_commit'))}",
        f"- command: {_md_text(prov.get('command'))}",
        f"- suite config sha256: {_md_text(board['suite']['config_hash'])}; "
        f"results.json sha256: {_md_text(board['source']['sha256'])}",
        f"- **{_md_text(board['board']['kind'])}**: {_md_text(board['board']['note'])}",
        f"- protocol: {_md_text(board['protocol'])}",
        f"- ranking: {_md_text(board['ranking'])}",
        "",
        "## Main view",
        "",
        f"One row per method; per target its dev-selected configuration measured on the test partition: the "
        f"ranking metric with its {conf} CI, the rank interval (the ranks this test data allows it: an entry significantly above another never shares its interval), and "
        f"the paired difference to the blind baseline with its CI; **{NOT_ABOVE_BLIND}** marks a CI that does not "
        f"lie above 0; **{CEILING}** marks each target's strongest method, chosen on dev (its ceiling). Details per "
        "target below.",
        "",
    ]
    header = ["method"]
    for t in board["targets"]:
        header += [f"{_md_text(t['name'])}: {metric_label(t['primary_metric'])} [{conf} CI]", "rank", "vs blind"]
    rows = []
    for method in board["methods"]:
        cells = [f"**{_md_text(method)}**" if method == BLIND_METHOD else _md_text(method)]
        for t in board["targets"]:
            e = entry_of(t, method)
            if e is not None and e.get("submitted"):
                cells[0] = _md_text(method) + " (submitted)"
            cells += ["—", "—", "—"] if e is None else [fmt_metric(e[t["primary_metric"]]), _md_rank(e),
                                                        _md_vs_blind(e)]
        rows.append(cells)
    lines += _md_table(header, rows)
    lines.append("")
    lines += [f"- n/a: {_md_text(x)}" for x in main_na_legend(board)]
    lines += [f"- {_md_text(t['name'])} is ranked by {metric_label(t['primary_metric'])}: {_md_text(t['why'])}"
              for t in board["targets"]]
    lines.append("")
    for t in board["targets"]:
        lines += _md_target(t, conf)
    lines += ["## Details", "",
              "Every results.json row per target: every variant, slice, frame count, level, on the dev partition "
              "(where configurations are chosen) and the test partition (where they are reported). "
              "* marks a method's dev-selected configuration.", ""]
    for t in board["targets"]:
        lines += [f"### Details: {_md_text(t['name'])} ({len(t['details'])} rows)", "", _md_text(levels_note(t)), ""]
        header = ["attack", "method", "slice", "frames", "level", "partition", *(metric_label(m) for m in METRICS)]
        lines += _md_table(header, ([("\\* " if d["selected"] else "") + _md_text(d["attack"]), _md_text(d["method"]),
                                     _md_text(d["slice"]), frames_text(d["n_frames"]), level_label(d["level"]),
                                     d["partition"], *(fmt_metric(d[m]) for m in METRICS)] for d in t["details"]))
        lines.append("")
        lines += [f"- n/a: {_md_text(x)}" for x in na_legend(t["details"])]
        lines.append("")
    return "\n".join(lines)


def _md_target(t: dict, conf: str) -> list[str]:
    primary, selection = t["primary_metric"], t.get("selection_metric") or "auc"
    lines = [f"## {_md_text(target_title(t))}", "",
             f"- ranked by **{metric_label(primary)}**: {_md_text(t['why'])}",
             f"- {_md_text(selection_note(t))}",
             f"- {_md_text(partition_note(t))}",
             f"- {_md_text(levels_note(t))}"]
    if not t["has_blind_baseline"]:
        lines.append("- no blind baseline in results.json for this target: no entry can be compared with it")
    lines += [f"- {_md_text(note)}" for note in (video_tied_note(t), ceiling_note(t), shadows_note(t)) if note]
    lines.append("")
    header = ["rank", "method", "attack", "slice", "frames", "level", "candidates", f"dev {metric_label(selection)}",
              *(f"test {metric_label(m)}" for m in METRICS), "vs blind"]
    lines += _md_table(header, ([_md_rank(e), _md_text(e["method"]) + (" (submitted)" if e.get("submitted") else ""),
                                 _md_text(e["attack"]), _md_text(e["slice"]), frames_text(e["n_frames"]),
                                 level_label(e["level"]), str(e["n_candidates"]),
                                 fmt_metric(e["dev"].get(selection)), *(fmt_metric(e.get(m)) for m in METRICS),
                                 _md_vs_blind(e)] for e in t["entries"]))
    if not t["entries"]:
        lines.append("_no entries_")
    lines.append("")
    lines += [f"- n/a: {_md_text(x)}" for x in na_legend(t["entries"])]
    for a in t["adjacent"]:
        verdict = "distinguishable" if a.get("distinguishable") else "not distinguishable"
        lines.append(f"- {_md_text(a.get('higher'))} − {_md_text(a.get('lower'))}: {metric_label(primary)} "
                     f"{fmt_diff(a.get('difference'))} ({conf} CI, paired): {verdict}")
    for s in t["skipped"]:
        lines.append(f"- skipped {_md_text(s.get('attack'))} ({_md_text(s.get('slice'))}, "
                     f"frames {_md_text(s.get('n_frames'))}): {_md_text(s.get('reason'))}")
    lines.append("")
    return lines
