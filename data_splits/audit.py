"""`vidsme splits audit`: the blind baseline. Can metadata or text alone tell members apart?

Model-free classifiers, cross-validated to predict membership (Das et al., "Blind Baselines Beat
Membership Inference Attacks for Foundation Models", 2024):

  metadata   per video: duration, resolution, fps, frame count, file size and bitrate, Vid-SME's
             motion (k1) and brightness (k3) statistics, text length, rows per video
             (HistGradientBoosting); without the video files only what the manifest holds
             (text length, rows per video)
  text       per QA row: TF-IDF n-grams of each field and of all together (text_blind.py;
             logistic regression, folds by video)
  both       the mean of the metadata and all-text probabilities

Beside them the audit counts the *text-keyed* rows: rows whose text holds a word used in one
video's text only (text_keys.py), a key a target can memorise without reading a frame.

A sound split gives AUC ≈ 0.5 for all of them. The split's blind AUC is the strongest of metadata,
all text and both (VERDICT_MODELS; each text field alone is reported, not used for the verdict);
where it is above 0.6, an MIA's AUC on that split is not evidence of leakage from the model: the
split itself separates members. Units: metadata and both per video (a video's rows share its
label; mixed videos are an error, as verify reports), text per row (its video AUC, the mean of
the rows', is reported too). Out-of-fold probabilities averaged over `repeats` seeded shuffles,
scored with the pinned metrics (AUC with a bootstrap CI, rows clustered by video). "Most
telling": metadata features ranked by their own AUC's distance from 0.5, and the n-grams of
largest weight either way.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidsme.atomic import write_json_atomic
from vidsme.metrics import MetricValue, evaluate_scores
from vidsme.data_splits.manifest import CARD_FILE
from vidsme.data_splits.registry import Split
from vidsme.errors import SplitError

FEATURES: tuple[str, ...] = (
    "duration_s",
    "fps",
    "num_frames",
    "width",
    "height",
    "size_bytes",
    "bytes_per_second",
    "k1_motion",
    "k3_brightness",
    "text_chars",
    "rows_per_video",
)
SOUND_RANGE = (0.4, 0.6)
AUDIT_FILE = "audit.json"


@dataclass
class AuditResult:
    """Blind-baseline outcome for one split. `auc` is the strongest model's (`strongest`); `models`
    maps each model to {"unit", "auc"}; `not_used` says what could not be used, and why."""

    split: str
    n_videos: dict
    auc: MetricValue
    feature_auc: dict  # metadata feature -> its own AUC, most telling first
    folds: int
    repeats: int
    seed: int
    strongest: str = "metadata"
    models: dict = field(default_factory=dict)
    ngrams: dict = field(default_factory=dict)
    not_used: list = field(default_factory=list)
    text_keys: dict = field(default_factory=dict)  # data_splits/text_keys.py: rows whose text names their video

    @property
    def sound(self) -> bool:
        return SOUND_RANGE[0] <= self.auc.value <= SOUND_RANGE[1]

    @property
    def verdict(self) -> str:
        """"sound", "LEAKY" (above the range) or "BELOW CHANCE" (below it), with what that means."""
        if self.sound:
            return "sound"
        if self.auc.value > SOUND_RANGE[1]:
            what = "the text" if self.strongest.startswith("text") else (
                "metadata and text" if self.strongest == "both" else "metadata")
            return f"LEAKY: {what} alone separates members from non-members ({self.strongest})"
        # a separating input pushes a fitted classifier above 0.5, not below: out-of-fold AUCs under 0.5
        # are the known small-sample bias of cross-validation on classes nothing separates
        return ("BELOW CHANCE: out-of-fold predictions anti-correlate with membership, which separating metadata "
                "would not cause; with the features' own AUCs near 0.5 it is the small-sample bias of "
                f"cross-validated AUC. Not sound by the {SOUND_RANGE[0]}-{SOUND_RANGE[1]} rule: audit more videos, or "
                "compare --seed values")

    def format(self) -> str:
        lines = [f"split {self.split!r}: blind AUC {self.auc.value:.3f} [{self.auc.ci_low:.3f}, "
                 f"{self.auc.ci_high:.3f}] ({self.strongest}) over {self.n_videos} videos -> {self.verdict}"]
        for name, model in self.models.items():
            auc = model["auc"]
            lines.append(f"  {name:<22} ({model['unit']:<5}) AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, "
                         f"{auc['ci_high']:.3f}]")
        if self.feature_auc:
            top = ", ".join(f"{k} {v:.3f}" for k, v in list(self.feature_auc.items())[:5])
            lines.append(f"  most telling features (own AUC): {top}")
        if self.text_keys:
            keys = self.text_keys
            shown = ", ".join(f"{e['key']!r} ({e['row']})" for e in keys["examples"][:3])
            lines.append(f"  text-keyed rows (a word in one video's text only): {keys['keyed_rows']} of {keys['rows']}"
                         + (f", e.g. {shown}" if shown else ""))
        if self.ngrams:
            lines.append(f"  most telling n-grams: member {', '.join(map(repr, self.ngrams['member']))}; "
                         f"non-member {', '.join(map(repr, self.ngrams['nonmember']))}")
        lines += [f"  not used: {why}" for why in self.not_used]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["auc"] = self.auc.to_dict()
        data["sound"] = self.sound
        data["verdict"] = self.verdict.split(":")[0]
        data["sound_range"] = list(SOUND_RANGE)
        return data

    def card_record(self) -> dict:
        """What the split card records of its audit."""
        return {"auc": self.auc.to_dict(), "strongest": self.strongest, "verdict": self.verdict.split(":")[0],
                "models": {k: {"unit": v["unit"], "auc": v["auc"]["value"]} for k, v in self.models.items()},
                "telling_features": list(self.feature_auc)[:3], "telling_ngrams": self.ngrams,
                "text_keyed_rows": self.text_keys.get("keyed_rows"), "not_used": self.not_used, "seed": self.seed}


def video_features(rows: Sequence[dict], video_root: Path, *, cache_dir: Path | None = None,
                   workers: int | None = None, progress: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(videos, features [n_videos, len(FEATURES)], labels [n_videos] 1 = member) of split rows."""
    from vidsme.video import probe_video
    from vidsme.video_stats import StatsConfig, compute_video_stats

    rows_by_video: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        rows_by_video[row["video"]].append(row)
    videos = sorted(rows_by_video)
    mixed = [v for v in videos if len({r["label"] for r in rows_by_video[v]}) > 1]
    if mixed:
        raise SplitError(f"{len(mixed)} video(s) have both member and non-member rows (e.g. {mixed[0]}); "
                         "run `vidsme splits verify` and fix the split first")
    paths = [Path(video_root) / v for v in videos]
    stats = compute_video_stats(paths, StatsConfig(), cache_dir=cache_dir, workers=workers, progress=progress)
    table = []
    for video, path, stat in zip(videos, paths, stats):
        info = probe_video(path)
        rows_of = rows_by_video[video]
        texts = [" ".join(t for t in (r["question"], r["answer"], r["caption"]) if t) for r in rows_of]
        table.append([
            info.duration_s, info.fps, info.num_frames, info.width, info.height, info.size_bytes,
            info.size_bytes / max(info.duration_s, 1e-9), stat.k1, stat.k3,
            float(np.mean([len(t) for t in texts])), float(len(rows_of)),
        ])
    labels = np.array([rows_by_video[v][0]["label"] == "member" for v in videos], dtype=int)
    return videos, np.asarray(table, dtype=np.float64), labels


# Bump when the classifier or its settings change: cached blind scores are keyed by it.
BLIND_VERSION = 1


def blind_scores(x: np.ndarray, y: np.ndarray, *, folds: int = 5, repeats: int = 5, seed: int = 0,
                 where: str = "split", cache_dir: Path | None = None) -> np.ndarray:
    """Out-of-fold member probability of each video, averaged over `repeats` seeded K-fold shuffles.

    With `cache_dir`, the scores are stored as JSON under a key of every input (features,
    labels, folds, repeats, seed, BLIND_VERSION): `splits audit` and the benchmark then fit once.
    """
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if min(n_pos, n_neg) < folds:
        raise SplitError(f"{where}: {n_pos} member and {n_neg} non-member videos, too few for {folds} folds")
    key = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float64).tobytes() + np.asarray(y, dtype=np.int64).tobytes()
                         + json.dumps([folds, repeats, seed, BLIND_VERSION]).encode()).hexdigest()
    cached = Path(cache_dir) / "blind" / f"{key}.json" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        return np.asarray(json.loads(cached.read_text(encoding="utf-8"))["scores"], dtype=np.float64)
    oof = _fit_blind(x, y, folds=folds, repeats=repeats, seed=seed)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cached, {"scores": oof.tolist()}, indent=None)
    return oof


def _fit_blind(x: np.ndarray, y: np.ndarray, *, folds: int, repeats: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros(len(y))
    for repeat in range(repeats):
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        for train, test in cv.split(x, y):
            model = _blind_model(len(train), seed + repeat)
            model.fit(x[train], y[train])
            oof[test] += model.predict_proba(x[test])[:, 1] / repeats
    return oof


def _blind_model(n_train: int, seed: int):
    """The blind classifier for `n_train` training videos."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    # sklearn's default 20-sample leaves cannot split a small fold at all
    leaf = max(2, min(20, n_train // 10))
    return HistGradientBoostingClassifier(max_depth=3, max_iter=100, learning_rate=0.1, min_samples_leaf=leaf,
                                          random_state=seed)


MANIFEST_FEATURES: tuple[str, ...] = ("text_chars", "rows_per_video")  # what needs no video file
VERDICT_MODELS: tuple[str, ...] = ("metadata", "text: all text", "both")


def manifest_features(rows: Sequence[dict]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(videos, MANIFEST_FEATURES per video, labels): the metadata a manifest holds without its videos."""
    by_video: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_video[row["video"]].append(row)
    videos = sorted(by_video)
    table = [[float(np.mean([len(" ".join(t for t in (r["question"], r["answer"], r["caption"]) if t))
                             for r in by_video[v]])), float(len(by_video[v]))] for v in videos]
    labels = np.array([by_video[v][0]["label"] == "member" for v in videos], dtype=int)
    return videos, np.asarray(table, dtype=np.float64), labels


def _auc(scores: np.ndarray, y: np.ndarray, ids: list[str], seed: int, clusters=None) -> MetricValue:
    return evaluate_scores(scores, y, direction="higher", attack="blind_audit", sample_ids=ids, seed=seed,
                           clusters=clusters).auc


def audit_split(split: Split, video_root: Path | None, *, folds: int = 5, repeats: int = 5, seed: int = 0,
                progress: bool = True, write: bool = True, cache_dir: Path | None = None) -> AuditResult:
    """Cross-validated blind classifiers (metadata, text, both) on `split`; writes <split>/audit.json and the
    card's `audit` record. Without `video_root` (or with videos missing under it) the metadata model uses
    what the manifest holds, and the result says so.

    cache_dir: where video statistics and blind scores are cached (None: not cached)."""
    from vidsme.data_splits.text_blind import ALL_TEXT, row_texts, telling_ngrams, text_blind_scores
    from vidsme.data_splits.text_keys import text_keys

    if split.is_pool:
        raise SplitError(f"{split.name!r} is a pool (no members or non-members): nothing to audit")
    if not split.card.members_available:
        raise SplitError(f"{split.name!r} has no member list (incomplete split): a blind audit needs both sides")
    rows = split.rows()
    all_videos = sorted({r["video"] for r in rows})
    missing = [] if video_root is None else [v for v in all_videos if not (Path(video_root) / v).is_file()]
    not_used = []
    if video_root is not None and not missing:
        stats_cache = None if cache_dir is None else Path(cache_dir) / "video-stats"
        videos, x, y = video_features(rows, video_root, cache_dir=stats_cache, progress=progress)
        names = FEATURES
    else:
        why = "no --video-root given" if video_root is None else (
            f"{len(missing)} of {len(all_videos)} videos missing under {video_root}")
        not_used.append(f"video features ({', '.join(f for f in FEATURES if f not in MANIFEST_FEATURES)}): {why}; "
                        "the metadata model uses the manifest's text length and rows per video")
        videos, x, y = manifest_features(rows)
        names = MANIFEST_FEATURES
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    meta = blind_scores(x, y, folds=folds, repeats=repeats, seed=seed, where=repr(split.name), cache_dir=cache_dir)
    ids = [f"video:{v}" for v in videos]
    models = {"metadata": {"unit": "video", "auc": _auc(meta, y, ids, seed)}}
    texts = row_texts(rows)
    y_rows = np.array([r["label"] == "member" for r in rows], dtype=int)
    groups = [r["video"] for r in rows]
    at = {v: i for i, v in enumerate(videos)}
    for name, docs in texts.items():
        oof = text_blind_scores(docs, y_rows, groups, folds=folds, repeats=repeats, seed=seed,
                                where=repr(split.name), cache_dir=cache_dir)
        models[f"text: {name}"] = {"unit": "row", "auc": _auc(oof, y_rows, [r["id"] for r in rows], seed, groups)}
        if name == ALL_TEXT:
            sums, counts = np.zeros(len(videos)), np.zeros(len(videos))
            np.add.at(sums, [at[g] for g in groups], oof)
            np.add.at(counts, [at[g] for g in groups], 1)
            per_video = sums / counts
    models[f"text: {ALL_TEXT} (video mean)"] = {"unit": "video", "auc": _auc(per_video, y, ids, seed)}
    models["both"] = {"unit": "video", "auc": _auc((meta + per_video) / 2, y, ids, seed)}
    # the verdict's candidates: one model per kind of input (the per-field ones are diagnostics: taking the
    # best of every variant would inflate the blind AUC of a sound split)
    strongest = max(VERDICT_MODELS, key=lambda k: (models[k]["auc"].value, k))
    own = {}
    for j, name in enumerate(names):
        own[name] = evaluate_scores(x[:, j], y, direction="higher", attack=f"blind_{name}", sample_ids=ids,
                                    n_bootstrap=1, seed=seed).auc.value
    ranked = dict(sorted(own.items(), key=lambda kv: -abs(kv[1] - 0.5)))
    result = AuditResult(split=split.name, n_videos={"member": n_pos, "nonmember": n_neg},
                         auc=models[strongest]["auc"], feature_auc=ranked, folds=folds, repeats=repeats, seed=seed,
                         strongest=strongest,
                         models={k: {"unit": v["unit"], "auc": v["auc"].to_dict()} for k, v in models.items()},
                         ngrams=telling_ngrams(texts[ALL_TEXT], y_rows, seed=seed), not_used=not_used,
                         text_keys=text_keys(rows).to_dict())
    if write:
        (split.path / AUDIT_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        split.card.audit = result.card_record()
        split.card.write(split.path / CARD_FILE)
    return result


def blind_dev_test_scores(x: np.ndarray, y: np.ndarray, is_dev: np.ndarray, *, folds: int = 5, repeats: int = 5,
                          seed: int = 0, where: str = "split", cache_dir: Path | None = None) -> np.ndarray:
    """The blind baseline under a dev/test partition: each video's member probability, where dev
    videos get out-of-fold scores from cross-validation within dev (at most `folds` folds, fewer
    when dev has fewer videos of a label), and test videos the prediction of the classifier
    fitted on all of dev (it never sees a test label).

    Cached like `blind_scores` (the key adds the partition).
    """
    is_dev = np.asarray(is_dev, dtype=bool)
    key = hashlib.sha256(np.ascontiguousarray(x, dtype=np.float64).tobytes() + np.asarray(y, dtype=np.int64).tobytes()
                         + is_dev.tobytes() + json.dumps(["dev/test", folds, repeats, seed, BLIND_VERSION]).encode()
                         ).hexdigest()
    cached = Path(cache_dir) / "blind" / f"{key}.json" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        return np.asarray(json.loads(cached.read_text(encoding="utf-8"))["scores"], dtype=np.float64)
    n_pos, n_neg = int(y[is_dev].sum()), int(is_dev.sum() - y[is_dev].sum())
    folds = min(folds, n_pos, n_neg)  # a small dev half gets fewer folds rather than no baseline
    if folds < 2:
        raise SplitError(f"{where}: the dev partition has {n_pos} member and {n_neg} non-member videos; the blind "
                         "baseline's cross-validation needs at least 2 of each")
    out = np.zeros(len(y))
    out[is_dev] = _fit_blind(x[is_dev], y[is_dev], folds=folds, repeats=repeats, seed=seed)
    if (~is_dev).any():
        out[~is_dev] = _blind_model(len(y[is_dev]), seed).fit(x[is_dev], y[is_dev]).predict_proba(x[~is_dev])[:, 1]
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cached, {"scores": out.tolist()}, indent=None)
    return out
