"""Compare two benchmark output folders (e.g. `make demo` before and after a change) apart from provenance.

Usage: python scripts/compare_results.py OLD_DIR NEW_DIR      (folders holding results.json)

Equal means: results.json equal once every `provenance` object, `created` time and `git_commit`
is set aside, and with them what names a run's files rather than its numbers: model card hashes
(a card records when it was trained), the cache folders named by them and absolute video paths
(two clones at two places); leaderboard.json equal apart from those and the results.json sha256;
leaderboard.md and leaderboard.html byte-identical once the old run's commit, time and results
sha256 are replaced by the new run's; every per-sample scores CSV byte-identical. Prints what
differs (the first few paths) and exits 1, else prints what it compared and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidsme.provenance import sha256_file

# what may differ between two runs of the same code: when and where they ran, never a number
VOLATILE = {"provenance", "created", "git_commit", "card_sha256", "sha256", "caches", "video_root"}
SHOWN = 10


def _stripped(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _stripped(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_stripped(v) for v in obj]
    return obj


def _differences(a: object, b: object, where: str = "") -> list[str]:
    if type(a) is not type(b):
        return [f"{where or '/'}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, dict):
        out = [f"{where}/{k}: only in {'old' if k in a else 'new'}" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += _differences(a[k], b[k], f"{where}/{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def _volatile_strings(results: dict, folder: Path) -> list[str]:
    prov = results.get("provenance") or {}
    return [s for s in (prov.get("git_commit"), prov.get("created"), sha256_file(folder / "results.json")) if s]


def compare(old: Path, new: Path) -> list[str]:
    """Every difference between the two folders' outputs, apart from provenance."""
    problems: list[str] = []
    results = [json.loads((d / "results.json").read_text(encoding="utf-8")) for d in (old, new)]
    problems += [f"results.json {d}" for d in _differences(*map(_stripped, results))]
    boards = [json.loads((d / "leaderboard.json").read_text(encoding="utf-8")) for d in (old, new)]
    for board in boards:
        board.get("source", {}).pop("sha256", None)
    problems += [f"leaderboard.json {d}" for d in _differences(*map(_stripped, boards))]
    swaps = list(zip(_volatile_strings(results[0], old), _volatile_strings(results[1], new)))
    for name in ("leaderboard.md", "leaderboard.html"):
        text = (old / name).read_text(encoding="utf-8")
        for before, after in swaps:
            text = text.replace(before, after)
        if text != (new / name).read_text(encoding="utf-8"):
            problems.append(f"{name}: differs beyond commit, time and results sha256")
    scores = [sorted(p.relative_to(d / "scores").as_posix() for p in (d / "scores").rglob("*.csv")) for d in (old, new)]
    if scores[0] != scores[1]:
        problems.append(f"scores/: different files ({len(scores[0])} vs {len(scores[1])})")
    problems += [f"scores/{rel}: differs" for rel in scores[0] if rel in scores[1]
                 and (old / "scores" / rel).read_bytes() != (new / "scores" / rel).read_bytes()]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python scripts/compare_results.py /tmp/before/runs/demo/benchmark "
                                     "runs/demo/benchmark")
    parser.add_argument("old", type=Path, help="the reference output folder")
    parser.add_argument("new", type=Path, help="the folder to check against it")
    args = parser.parse_args(argv)
    problems = compare(args.old, args.new)
    if problems:
        print(f"{len(problems)} difference(s):", *problems[:SHOWN], sep="\n  ")
        if len(problems) > SHOWN:
            print(f"  ... and {len(problems) - SHOWN} more")
        return 1
    n_rows = len(json.loads((args.new / "results.json").read_text(encoding="utf-8"))["rows"])
    n_csv = len(list((args.new / "scores").rglob("*.csv")))
    print(f"same results: {n_rows} results.json rows, the verdicts, leaderboard.json/.md/.html and {n_csv} scores "
          "CSVs agree apart from provenance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
