"""The blind baseline that reads: can the text alone tell members apart?

Das, Zhang & Tramèr ("Blind Baselines Beat Membership Inference Attacks for Foundation Models",
2024) beat published MIAs with bag-of-words classifiers on the text. Here: each QA row's text —
each field the model is prompted with or trained on (question, candidates, answer, caption) and
all of them together — as TF-IDF word 1-2-grams (sublinear tf), fed to an L2-regularised
logistic regression; out-of-fold probabilities by stratified group K-fold (a video's rows stay
in one fold: they share a label), averaged over seeded repeats. A video's score is the mean of
its rows', as for every attack. It needs no video file.

The unit is the row on purpose: a video-level document (all its rows' text) also encodes how
many rows the video has, which is metadata (audit.py's rows_per_video), not text.

"Most telling" n-grams: the largest positive (member) and negative (non-member) coefficients
of the model fitted on every row.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidsme.atomic import write_json_atomic
from vidsme.errors import SplitError

TEXT_FIELDS: tuple[str, ...] = ("question", "candidates", "answer", "caption")
ALL_TEXT = "all text"
# Bump when the text model or its settings change: cached scores are keyed by it.
TEXT_BLIND_VERSION = 1


def _field_text(row: dict, field: str) -> str:
    value = row.get(field)
    if isinstance(value, list):
        return " ; ".join(str(v) for v in value)
    return str(value) if value else ""


def row_texts(rows: Sequence[dict]) -> dict[str, list[str]]:
    """{field or ALL_TEXT: one text per row}, for the fields some row fills."""
    texts = {}
    for field in TEXT_FIELDS:
        per_row = [_field_text(r, field) for r in rows]
        if any(t.strip() for t in per_row):
            texts[field] = per_row
    texts[ALL_TEXT] = [" \n ".join(texts[f][i] for f in texts) for i in range(len(rows))]
    return texts


def text_model(seed: int):
    """TF-IDF word 1-2-grams + logistic regression (scikit-learn)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True, min_df=1),
                         LogisticRegression(C=1.0, max_iter=2000, random_state=seed))


def _key(texts: Sequence[str], y: np.ndarray, extra: list) -> str:
    blob = json.dumps([list(texts), np.asarray(y, dtype=int).tolist(), extra, TEXT_BLIND_VERSION]).encode()
    return hashlib.sha256(blob).hexdigest()


def _cached(cache_dir: Path | None, key: str, compute) -> np.ndarray:
    path = Path(cache_dir) / "blind-text" / f"{key}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        return np.asarray(json.loads(path.read_text(encoding="utf-8"))["scores"], dtype=np.float64)
    scores = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"scores": scores.tolist()}, indent=None)
    return scores


def _oof(texts: list[str], y: np.ndarray, groups: list[str], folds: int, repeats: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    docs = np.asarray(texts, dtype=object)
    out = np.zeros(len(y))
    for repeat in range(repeats):
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        for train, test in cv.split(docs, y, groups):
            model = text_model(seed + repeat).fit(docs[train], y[train])
            out[test] += model.predict_proba(docs[test])[:, 1] / repeats
    return out


def _folds(y: np.ndarray, groups: list[str], folds: int, where: str, what: str) -> int:
    videos = {g: int(label) for g, label in zip(groups, y)}
    n_pos = sum(videos.values())
    n_neg = len(videos) - n_pos
    folds = min(folds, n_pos, n_neg)
    if folds < 2:
        raise SplitError(f"{where}: {what}{n_pos} member and {n_neg} non-member videos, too few to cross-validate "
                         "the text baseline (at least 2 of each)")
    return folds


def text_blind_scores(texts: list[str], y: np.ndarray, groups: list[str], *, folds: int = 5, repeats: int = 5,
                      seed: int = 0, where: str = "split", cache_dir: Path | None = None) -> np.ndarray:
    """Out-of-fold member probability of each row from its text, folds by video (cached under `cache_dir`)."""
    y = np.asarray(y)
    folds = _folds(y, groups, folds, where, "")
    return _cached(cache_dir, _key(texts, y, ["oof", list(groups), folds, repeats, seed]),
                   lambda: _oof(list(texts), y, list(groups), folds, repeats, seed))


def text_dev_test_scores(texts: list[str], y: np.ndarray, groups: list[str], is_dev: np.ndarray, *, folds: int = 5,
                         repeats: int = 5, seed: int = 0, where: str = "split",
                         cache_dir: Path | None = None) -> np.ndarray:
    """Under a dev/test partition: dev rows out-of-fold within dev (folds by video), test rows predicted by the
    model fitted on all of dev (it never sees a test label). As audit.blind_dev_test_scores, on text."""
    is_dev = np.asarray(is_dev, dtype=bool)
    y, groups = np.asarray(y), list(groups)
    dev_groups = [g for g, keep in zip(groups, is_dev) if keep]
    folds = _folds(y[is_dev], dev_groups, folds, where, "the dev partition has ")

    def compute() -> np.ndarray:
        docs = np.asarray(texts, dtype=object)
        out = np.zeros(len(y))
        out[is_dev] = _oof(list(docs[is_dev]), y[is_dev], dev_groups, folds, repeats, seed)
        if (~is_dev).any():
            out[~is_dev] = text_model(seed).fit(docs[is_dev], y[is_dev]).predict_proba(docs[~is_dev])[:, 1]
        return out

    key = _key(texts, y, ["dev/test", groups, is_dev.astype(int).tolist(), folds, repeats, seed])
    return _cached(cache_dir, key, compute)


def telling_ngrams(texts: list[str], y: np.ndarray, k: int = 5, seed: int = 0) -> dict[str, list[str]]:
    """The n-grams with the largest member and non-member weights of the model fitted on every video."""
    model = text_model(seed).fit(np.asarray(texts, dtype=object), np.asarray(y))
    vocab = model[0].get_feature_names_out()
    weights = model[-1].coef_[0]
    order = np.argsort(weights)
    return {"member": [str(vocab[i]) for i in order[::-1][:k]], "nonmember": [str(vocab[i]) for i in order[:k]]}


__all__ = ["ALL_TEXT", "TEXT_BLIND_VERSION", "TEXT_FIELDS", "row_texts", "telling_ngrams", "text_blind_scores",
           "text_dev_test_scores", "text_model"]
