"""`vidsme splits list`: every known split with its status, counts and dev/test partition."""
from __future__ import annotations

from dataclasses import dataclass

from vidsme.data_splits.registry import SYNTHETIC_SPLITS, Split, known_split_names, load_split
from vidsme.errors import SplitError


@dataclass(frozen=True)
class SplitSummary:
    """One line of the listing. `split` is None when the split is not built yet."""

    name: str
    split: Split | None

    @property
    def status(self) -> str:
        """not built | built (synthetic) | incomplete (members not public) | ready."""
        if self.split is None:
            return "not built"
        if self.name in SYNTHETIC_SPLITS:
            return "built"
        return "incomplete" if not self.split.card.members_available else "ready"

    def counts(self) -> tuple[str, str]:
        """(rows, videos) as "member/non-member", or "N (pool)" for a pool."""
        card = self.split.card
        rows, videos = card.counts["rows"], card.counts["videos"]
        if self.split.is_pool:
            return f"{rows.get('pool', 0)} (pool)", f"{videos.get('pool', 0)} (pool)"
        return (f"{rows.get('member', 0)}/{rows.get('nonmember', 0)}",
                f"{videos.get('member', 0)}/{videos.get('nonmember', 0)}")

    def sides(self) -> str:
        """Dev | test videos (member/non-member) as the card records them; `vidsme splits verify` checks the
        record against the manifest."""
        split = self.split
        part = split.card.partition
        if isinstance(part, dict) and all(isinstance(part.get(s), dict) for s in ("dev", "test")):
            dev, test = part["dev"].get("videos", {}), part["test"].get("videos", {})
            return (f"{dev.get('member', 0)}/{dev.get('nonmember', 0)} | "
                    f"{test.get('member', 0)}/{test.get('nonmember', 0)}")
        if split.is_pool or not split.card.members_available:
            return "-"
        if split.test_only:
            return "test only"
        return f"none: run `vidsme splits build {self.name}`" if self.name in SYNTHETIC_SPLITS else "none: re-create it"


def split_summaries() -> list[SplitSummary]:
    """Every known split (committed, buildable, user-created), in name order."""
    out = []
    for name in known_split_names():
        try:
            out.append(SplitSummary(name, load_split(name)))
        except SplitError:
            out.append(SplitSummary(name, None))
    return out


def format_listing(summaries: list[SplitSummary]) -> str:
    """The table `vidsme splits list` prints."""
    w = max([18, *(len(s.name) for s in summaries)])
    lines = [f"{'split':<{w}} {'kind':<6} {'status':<11} {'rows (member/non-member)':<26} "
             f"{'videos (member/non-member)':<28} dev | test videos"]
    for s in summaries:
        if s.split is None:
            lines.append(f"{s.name:<{w}} {'':<6} {s.status:<11} run `vidsme splits build {s.name}`")
            continue
        rows, videos = s.counts()
        lines.append(f"{s.name:<{w}} {s.split.card.kind:<6} {s.status:<11} {rows:<26} {videos:<28} {s.sides()}")
    return "\n".join(lines)
