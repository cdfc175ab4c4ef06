"""The sealed challenge: seeds from a secret, fresh content, private/public layout, resumable build,
reveal and verification against the commitments (challenge/build.py, docs/CHALLENGE.md)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidsme.challenge import build as C
from vidsme.cli import main
from vidsme.data_splits import synthetic as S
from vidsme.paths import SPLITS_DIR_ENV
from vidsme.errors import VidsmeError
from tiny_configs import CHALLENGE_TINY

ROOT = Path(__file__).resolve().parents[1]
TINY = CHALLENGE_TINY
SETTINGS = C.ChallengeSettings(size=6, pretrain_videos=16, overrides=TINY, configs=ROOT / "configs")
PUBLIC_FILES = {"challenge.json", *(f"splits/{n}/card.json" for n in C.POOL_NAMES),
                *(f"targets/{t.name}/target.json" for t in C.TARGETS)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One tiny challenge, built from a new secret (run from the repository root: the configs are relative)."""
    root = tmp_path_factory.mktemp("challenge")
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)
    lines: list[str] = []
    C.build_challenge(root / "keys" / "round.secret", root / "dir", SETTINGS, create_secret=True, progress=False,
                      log=lines.append)
    yield {"root": root, "dir": root / "dir", "secret": root / "keys" / "round.secret", "log": lines}
    mp.undo()


def _private_manifest(built, name: str) -> Path:
    return built["dir"] / "private" / "splits" / name / "manifest.jsonl"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def _public_files(built) -> set[str]:
    public = built["dir"] / "public"
    return {str(p.relative_to(public)) for p in public.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------- secret, seeds, sizes
def test_a_short_secret_is_refused_before_anything_is_written(tmp_path, capsys):
    short = tmp_path / "short.secret"
    short.write_bytes(os.urandom(31))
    with pytest.raises(VidsmeError, match="31 bytes.*at least 32"):
        C.read_secret(short)
    assert main(["challenge", "build", "--secret", str(short), "--out", str(tmp_path / "dir")]) == 2
    assert "at least 32" in capsys.readouterr().err
    assert not (tmp_path / "dir").exists()
    with pytest.raises(VidsmeError, match="does not exist.*--new-secret"):
        C.read_secret(tmp_path / "missing")


def test_new_secret_is_private_and_never_overwritten(tmp_path, capsys):
    path = tmp_path / "round.secret"
    C.new_secret(path)
    data = path.read_bytes()
    assert len(data) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(VidsmeError, match="already exists; a secret is never overwritten"):
        C.new_secret(path)
    assert main(["challenge", "build", "--secret", str(path), "--new-secret", "--out", str(tmp_path / "d")]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert path.read_bytes() == data and not (tmp_path / "d").exists()


def test_seeds_are_keyed_hashes_of_the_secret():
    secret = bytes(range(32))
    seeds = C.derive_seeds(secret)
    assert seeds == C.derive_seeds(secret)  # deterministic
    assert len(set(seeds.values())) == len(seeds)  # one per purpose
    assert set(seeds) == set(C.seed_purposes()) and "member-draw:challenge-mcqa" in seeds
    assert all(0 <= v < 2**31 for k, v in seeds.items() if k.startswith(("train:", "init:")))
    import hmac

    expected = hmac.new(secret, b"vidsme-challenge-v1/generator:challenge-mcqa", hashlib.sha256).digest()
    assert seeds["generator:challenge-mcqa"] == int.from_bytes(expected[:8], "big")
    other = C.derive_seeds(bytes(range(1, 33)))
    assert not set(other.values()) & set(seeds.values())


def test_pool_sizes_give_at_least_size_rows_per_label():
    assert C.pool_sizes(1000) == {"challenge-mcqa": 2000, "challenge-oeqa": 1000, "challenge-caption": 2000,
                                  "challenge-pretrain": 240}
    assert C.pool_sizes(101)["challenge-oeqa"] == 102  # 2 rows per video: 51 videos per label, 102 rows
    with pytest.raises(VidsmeError, match="at least 2"):
        C.pool_sizes(1)


@pytest.mark.parametrize("override, message", [
    ("base.seed=1", "sets 'seed' itself"),
    ("mcqa-full.data.split=synth-mcqa", "sets 'data.split' itself"),
    ("targets.data={split: x}", "sets 'data.split' itself"),
    ("suite.cache_dir=/tmp/x", "sets 'cache_dir' itself"),
    ("base.model.seed=3", "sets 'model.seed' itself"),
    ("mcqa-ful.optim.epochs=1", "Did you mean: mcqa-full"),
    ("epochs=1", "expected PREFIX.KEY=VALUE"),
])
def test_overrides_of_what_the_challenge_sets_are_refused(override, message):
    with pytest.raises(VidsmeError, match=message):
        C._route_overrides([override])


@pytest.mark.parametrize("args, message", [
    (["--size", "3"], "mcqa-full would train on 3 rows, fewer than one optimizer step of 8"),
    (["--size", "8", "--pretrain-videos", "2"], "tiny-base would train on 4 rows"),
    (["--set", "base.optim.epoch=1"], "Did you mean: epochs"),
    (["--set", "suite.frame_count=[4]"], "Did you mean: frame_counts"),
])
def test_recipe_problems_stop_the_build_before_anything_is_written(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    secret = tmp_path / "s.secret"
    assert main(["challenge", "build", "--secret", str(secret), "--new-secret", "--out", str(tmp_path / "d"),
                 *args]) == 2
    assert message in capsys.readouterr().err
    assert not secret.exists() and not (tmp_path / "d").exists()


def test_overrides_are_routed():
    routed = C._route_overrides(["base.optim.epochs=1", "targets.optim.lr=0.1", "oeqa-lora.lora.r=4",
                                 "suite.frame_counts=[4]"])
    assert routed["base"] == ["optim.epochs=1"] and routed["suite"] == ["frame_counts=[4]"]
    assert routed["mcqa-full"] == ["optim.lr=0.1"] and routed["oeqa-lora"] == ["optim.lr=0.1", "lora.r=4"]


# ----------------------------------------------------------------------------- the generator
# sha256 of the rows (JSON, sorted keys) and of the rendered frames of videos 0-2 of each public pool, seed 0.
# Frames: recorded with the generator before the challenge pools existed (pixels never moved). Rows: text
# version 2 (no text keys; synth-pretrain with its perception rows since issue 27), synth-pretrain's at text version
# 3 (colour distractors absent from the clip); TITLED_GOLDEN, the text
# before it (version 1, with titles), which the *-titled controls write unchanged (with their own pool name).
PUBLIC_GOLDEN = {
    "synth-mcqa": ("7bb7f0e1d8ed4806e83702d6a07b6163a1e0b463b64ea814ef7055f54bea5d50",
                   "5a30153ff3cc5cf59eba34ae72e8d263f6bde29f17168af07814d6fe73a2ba2f"),
    "synth-oeqa": ("07d6e5e4b998fe642974da43a8687f0f885132d0cf4405da7ceea35a74a84ff5",
                   "4dfe0088d225df3519f1897c332af8ae135e9e3cf5d41748241add102f3bef00"),
    "synth-caption": ("13b934224b10c152a97c175bb1356dec5647ea3c4da4fc6bd510b347a7b856c3",
                      "1b5c01a9a726c4872c57e2ed503213e6d5f3db75d6705e024a1a1888bebc6262"),
    "synth-pretrain": ("dc5658c0c088e577834a668fe0cbbe2c82c8511a6e6f9eedcaf389f0eb5f4592",
                       "c11161637cf31ae0496b8f0e1e2d4b992451cae5d8bf2e327d52152c95ce21f6"),
}
TITLED_GOLDEN = {
    "synth-mcqa": "1bfa2a5a7274be38ef49126d0ee164fb349357c1d9ec74326de8ee5fcca52146",
    "synth-oeqa": "6f6eaa2f3472ff1b0948a476f2481ab6d216d4838238e6e70e93b2f8451a96d4",
    "synth-caption": "382414329358986a8880edf0a8ae6481279f2daf0fdc849f90d18646d67529cf",
}


@pytest.mark.parametrize("pool", list(TITLED_GOLDEN))
def test_the_titled_controls_write_the_text_of_text_version_1(pool):
    rows = [{**r, "id": r["id"].replace(f"{pool}-titled", pool), "source": pool}
            for _, video_rows in S.select_videos(f"{pool}-titled", 3, 0) for r in video_rows]
    assert hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest() == TITLED_GOLDEN[pool]


@pytest.mark.parametrize("pool", list(PUBLIC_GOLDEN))
def test_the_public_generator_output_is_unchanged(pool, tmp_path):
    rows, frames = [], hashlib.sha256()
    for spec, video_rows in S.select_videos(pool, 3, 0):
        rows += video_rows
        frames.update(S.render_video(spec).tobytes())
    assert hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest() == PUBLIC_GOLDEN[pool][0]
    assert frames.hexdigest() == PUBLIC_GOLDEN[pool][1]
    written = S.generate_pool(pool, tmp_path, n_videos=2, progress=False)
    assert [{**r, "video_sha256": None} for r in written] == rows[: len(written)]
    # where the public split is built on this machine (seed 0), the same mp4 bytes and texts
    from vidsme.data_splits import registry

    manifest = Path(registry.__file__).resolve().parent / pool / "manifest.jsonl"
    card = manifest.with_name("card.json")
    if manifest.is_file() and json.loads(card.read_text())["source"].get("seed") == 0:
        public = {r["id"]: r for r in _rows(manifest)}
        for row in written:
            assert {k: public[row["id"]][k] for k in ("video", "question", "answer", "caption", "video_sha256")} == {
                k: row[k] for k in ("video", "question", "answer", "caption", "video_sha256")}


def test_skipped_scenes_leave_gaps_deterministically():
    refused = {0, 2}
    chosen = S.select_videos("challenge-mcqa", 3, 7, skip=lambda spec, rows: spec.index in refused)
    assert [spec.index for spec, _ in chosen] == [1, 3, 4]
    assert [rows[0]["id"] for _, rows in chosen] == [f"challenge-mcqa/v000{i}-q0" for i in (1, 3, 4)]
    assert [s for s, _ in S.select_videos("challenge-mcqa", 5, 7)][1] == chosen[0][0]  # same scene, same index
    with pytest.raises(VidsmeError, match="skip rule leaves too few videos"):
        S.select_videos("challenge-mcqa", 2, 7, skip=lambda spec, rows: True)


def test_challenge_pools_are_new_scenes_and_texts_with_the_public_tasks():
    ref = C.public_reference()
    assert ref.n_videos == {p.name: p.n_videos for p in S.POOLS.values()}
    for name, pool in S.CHALLENGE_POOLS.items():
        public = S.POOLS[name.replace("challenge-", "synth-")]
        assert (pool.task, pool.rows_per_video, pool.title_slot) == (public.task, public.rows_per_video,
                                                                     public.title_slot)
        assert pool.namespace != public.namespace
    # a public scene is caught by the skip rule (its title, texts and scene)
    spec, rows = S.select_videos("synth-oeqa", 1, 0)[0]
    assert ref.collides(spec, rows)
    spec, rows = S.select_videos("challenge-oeqa", 1, 0)[0]
    assert not ref.collides(spec, rows)


# ----------------------------------------------------------------------------- the build
def test_build_layout_private_and_public(built):
    d = built["dir"]
    assert stat.S_IMODE((d / "private").stat().st_mode) == 0o700
    assert stat.S_IMODE(built["secret"].stat().st_mode) == 0o600
    assert {p.name for p in (d / "private").iterdir()} == {"challenge.json", "splits", "videos", "models", "cache",
                                                           "suite.yaml"}
    assert _public_files(built) == PUBLIC_FILES
    record = json.loads((d / "private" / "challenge.json").read_text())
    secret = built["secret"].read_bytes()
    assert record["secret_sha256"] == hashlib.sha256(secret).hexdigest()
    assert record["seeds"] == C.derive_seeds(secret)
    assert all(record["stages"][s]["done"] for s in ("splits", "models", "features", "public"))
    assert not list(d.rglob("*.secret")) and not any(p.read_bytes() == secret for p in d.rglob("*") if p.is_file())


def test_public_holds_no_manifest_label_id_seed_or_local_path(built):
    d = built["dir"]
    public_text = "\n".join(p.read_text() for p in (d / "public").rglob("*") if p.is_file())
    secret = built["secret"].read_bytes()
    for name in C.POOL_NAMES:
        rows = _rows(_private_manifest(built, name))
        for row in rows:
            for value in (row["id"], row["video"], row["video_sha256"]):
                assert value not in public_text
        manifest_sha = hashlib.sha256(_private_manifest(built, name).read_bytes()).hexdigest()
        assert manifest_sha in public_text  # the commitment
    for value in C.derive_seeds(secret).values():
        assert str(value) not in public_text
    assert secret.hex() not in public_text and str(d.resolve()) not in public_text
    assert '"label"' not in public_text and "manifest.jsonl" not in {p.name for p in (d / "public").rglob("*")}
    card = json.loads((d / "public" / "splits" / "challenge-mcqa" / "card.json").read_text())
    assert "seed" not in card["source"] and "seed" not in card["drawn"] and card["drawn"]["test_only"] is True
    if "feedback" in card["drawn"]:  # the feedback part by counts and a commitment only, until the reveal
        assert {"videos", "seed"}.isdisjoint(card["drawn"]["feedback"]) and card["drawn"]["feedback"]["videos_sha256"]
    assert card["partition"] is None and card["counts"]["rows"] == {"member": 6, "nonmember": 6}
    target = json.loads((d / "public" / "targets" / "mcqa-full" / "target.json").read_text())
    assert "train_loss_per_step" not in target and "config_hash" not in target
    assert target["config"]["seed"].startswith("secret-derived") and target["role"] == "full"
    public = json.loads((d / "public" / "challenge.json").read_text())
    assert public["test_only"] is True and public["base"]["config"]["model"]["seed"].startswith("secret-derived")
    assert [(t["name"], t["role"], t["split"]) for t in public["targets"]] == [
        ("mcqa-full", "full", "challenge-mcqa"), ("oeqa-lora", "lora", "challenge-oeqa"),
        ("caption-projector", "projector", "challenge-caption")]
    assert public["commitments"]["secret_sha256"] == hashlib.sha256(secret).hexdigest()


def test_the_splits_work_with_the_existing_loaders_and_are_test_only(built, monkeypatch):
    from vidsme.data_splits.registry import load_split
    from vidsme.data_splits.verify import verify_split
    from vidsme.errors import SplitError

    monkeypatch.setenv(SPLITS_DIR_ENV, str(built["dir"] / "private" / "splits"))
    secret = built["secret"].read_bytes()
    for t in C.TARGETS:
        split = load_split(t.split)
        rows = split.rows()
        assert split.card.counts["rows"] == {"member": 6, "nonmember": 6}
        assert split.card.drawn["test_only"] is True and split.card.partition is None
        assert split.card.source["seed"] == C.derive_seed(secret, f"generator:{t.split}")
        assert split.card.drawn["seed"] == C.derive_seed(secret, f"member-draw:{t.split}")
        assert all(r["video"].startswith(f"{t.split}/") for r in rows)
        report = verify_split(split, built["dir"] / "private" / "videos", progress=False)
        assert report.ok and "dev/test partition: none (test-only split)" in report.checked
        # every row a test row, but for the feedback part: a quarter (at least one) of each label's videos,
        # drawn from the secret, reported apart before the reveal
        feedback = split.card.drawn["feedback"]
        assert feedback["seed"] == C.derive_seed(secret, f"feedback:{t.split}")
        assert feedback["videos"] == C.draw_feedback(rows, 0.25, feedback["seed"])
        assert split.test_only and split.sides(rows) == ["feedback" if r["video"] in feedback["videos"] else "test"
                                                         for r in rows]
        for label in ("member", "nonmember"):
            videos = {r["video"] for r in rows if r["label"] == label}
            assert len(videos & set(feedback["videos"])) == max(1, len(videos) // 4)
        with pytest.raises(SplitError):
            split.partition()
    assert load_split("challenge-pretrain").is_pool


def test_content_is_disjoint_from_the_public_splits(built):
    ref = C.public_reference()
    shas = set()
    for name in C.POOL_NAMES:
        for row in _rows(_private_manifest(built, name)):
            assert (row["caption"] or "") not in ref.captions  # questions repeat by design: a closed vocabulary
            shas.add(row["video_sha256"])
    from vidsme.data_splits import registry

    for pool in S.POOLS:  # the public splits built on this machine, by content checksum
        manifest = Path(registry.__file__).resolve().parent / pool / "manifest.jsonl"
        if manifest.is_file():
            assert not shas & {r["video_sha256"] for r in _rows(manifest)}
    record = json.loads((built["dir"] / "private" / "challenge.json").read_text())
    assert len(record["fresh_content"]["checked"]) == 4
    assert record["fresh_content"]["questions_also_public"]["of"] > 0
    scenes = [spec for name in C.POOL_NAMES for spec, _ in S.select_videos(name, 4, 12345)]
    assert not any(C._scene(spec) in ref.scenes for spec in scenes)  # a fresh draw has no public scene


def test_every_row_has_its_features_in_the_private_cache(built, monkeypatch):
    from vidsme.benchmark.cache import FeatureCache
    from vidsme.benchmark.config import SuiteConfig
    from vidsme.config import load_config

    d = built["dir"] / "private"
    record = json.loads((d / "challenge.json").read_text())
    assert record["suite"]["views"] == ["natural", "reversed", "reference"]
    for t in C.TARGETS:
        ids = {r["id"] for r in _rows(_private_manifest(built, t.split))}
        folder = d / record["suite"]["caches"][t.name]["4"]["folder"]
        cache = FeatureCache.from_folder(folder)
        assert cache.done_ids() == ids and cache.key.split == t.split
    cfg = load_config(SuiteConfig, d / "suite.yaml")
    assert [t.split for t in cfg.targets] == list(C.SPLITS) and Path(cfg.cache_dir) == d / "cache"


def test_a_rerun_reuses_every_stage(built):
    before = _mtimes(built["dir"] / "private") | {f"public/{k}": v for k, v in _mtimes(built["dir"] / "public").items()}
    lines: list[str] = []
    C.build_challenge(built["secret"], built["dir"], SETTINGS, progress=False, log=lines.append)
    after = _mtimes(built["dir"] / "private") | {f"public/{k}": v for k, v in _mtimes(built["dir"] / "public").items()}
    changed = sorted(k for k in before if after.get(k) != before[k]) + sorted(set(after) - set(before))
    assert changed == ["challenge.json"], changed  # the private build record only
    text = "\n".join(lines)
    for name in ("splits", "models", "features", "public"):
        assert f"{name}: up to date" in text
    assert "4 frames reused" in text


def test_a_rerun_refuses_another_secret_or_other_settings(built, tmp_path):
    other = tmp_path / "other.secret"
    C.new_secret(other)
    with pytest.raises(VidsmeError, match="another secret"):
        C.build_challenge(other, built["dir"], SETTINGS, progress=False, log=lambda _: None)
    with pytest.raises(VidsmeError, match="other settings \\(size: 6 then, 7 now\\)"):
        C.build_challenge(built["secret"], built["dir"], C.ChallengeSettings(**{**SETTINGS.__dict__, "size": 7}),
                          progress=False, log=lambda _: None)


def test_a_deleted_stage_is_redone_and_nothing_else(built):
    d = built["dir"] / "private"
    record = json.loads((d / "challenge.json").read_text())
    shard = sorted((d / record["suite"]["caches"]["oeqa-lora"]["4"]["folder"]).glob("shard-*.json"))[0]
    shard.unlink()  # as if killed during that batch
    shutil.rmtree(d / "models" / "caption-projector")  # as if killed before its card was written
    kept = {k: v for k, v in _mtimes(d).items()
            if k.startswith(("splits/", "videos/", "models/tiny-base/", "models/mcqa-full/", "models/oeqa-lora/"))}
    lines: list[str] = []
    C.build_challenge(built["secret"], built["dir"], SETTINGS, progress=False, log=lines.append)
    text = "\n".join(lines)
    assert "caption-projector: trained" in text and "mcqa-full: reused" in text and "tiny-base: reused" in text
    assert "oeqa-lora: 4 frames extracted" in text and "mcqa-full: 4 frames reused" in text
    after = _mtimes(d)
    assert {k: after.get(k) for k in kept} == kept
    assert shard.is_file() and (d / "models" / "caption-projector" / "target.json").is_file()


# ----------------------------------------------------------------------------- reveal and verify
def test_reveal_refuses_a_tampered_manifest_and_publishes_nothing(built):
    path = _private_manifest(built, "challenge-mcqa")
    original = path.read_bytes()
    rows = _rows(path)
    rows[0]["label"] = "nonmember" if rows[0]["label"] == "member" else "member"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        with pytest.raises(VidsmeError, match="challenge-mcqa: manifest .* the commitment is .* changed after"):
            C.reveal_challenge(built["dir"], built["secret"], log=lambda _: None)
    finally:
        path.write_bytes(original)
    assert _public_files(built) == PUBLIC_FILES


def test_reveal_refuses_the_wrong_secret(built, tmp_path):
    other = tmp_path / "other.secret"
    C.new_secret(other)
    with pytest.raises(VidsmeError, match="not the committed .*wrong secret"):
        C.reveal_challenge(built["dir"], other, log=lambda _: None)
    assert _public_files(built) == PUBLIC_FILES


def test_reveal_publishes_and_anyone_can_verify(built, tmp_path, capsys):
    assert main(["challenge", "reveal", str(built["dir"]), "--secret", str(built["secret"])]) == 0
    public = built["dir"] / "public"
    assert _public_files(built) == PUBLIC_FILES | {"secret.bin", "reveal.json",
                                                   *(f"splits/{n}/manifest.jsonl" for n in C.POOL_NAMES)}
    assert (public / "secret.bin").read_bytes() == built["secret"].read_bytes()
    report = json.loads((public / "reveal.json").read_text())
    assert report["seeds"] == C.derive_seeds(built["secret"].read_bytes())
    assert any("member draw and feedback part re-drawn" in line for line in report["verifiable_by_anyone"])
    assert any("every video" in line for line in report["verified_by_organiser"])
    for name in C.SPLITS:  # the feedback part's videos are public now, and match the private record
        card = json.loads((public / "splits" / name / "card.json").read_text())
        private = json.loads((built["dir"] / "private" / "splits" / name / "card.json").read_text())
        assert card["drawn"]["feedback"]["videos"] == private["drawn"]["feedback"]["videos"]
    capsys.readouterr()
    # anyone with only the public folder
    copy = tmp_path / "published"
    shutil.copytree(public, copy)
    assert main(["challenge", "verify", str(copy)]) == 0
    assert "every commitment holds" in capsys.readouterr().out
    # a label changed after the build, with the commitments and card rewritten to match: the draw gives it away
    manifest = copy / "splits" / "challenge-oeqa" / "manifest.jsonl"
    rows = _rows(manifest)
    flip = rows[0]["video"]
    for row in rows:
        if row["video"] == flip:
            row["label"] = "nonmember" if row["label"] == "member" else "member"
    manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
    from vidsme.data_splits.manifest import count_by_label

    for file, keys in ((copy / "challenge.json", ("commitments", "splits", "challenge-oeqa")),
                       (copy / "splits" / "challenge-oeqa" / "card.json", ())):
        data = json.loads(file.read_text())
        entry = data
        for key in keys:
            entry = entry[key]
        entry["manifest_sha256"], entry["counts"] = sha, count_by_label(rows)
        file.write_text(json.dumps(data))
    card = copy / "targets" / "oeqa-lora" / "target.json"
    data = json.loads(card.read_text())
    data["split"]["manifest_sha256"] = sha
    card.write_text(json.dumps(data))
    with pytest.raises(VidsmeError, match="challenge-oeqa: 2 label\\(s\\) are not the secret's member draw"):
        C.verify_challenge(copy)


@pytest.mark.integration
def test_a_build_killed_during_training_resumes(tmp_path):
    """SIGKILL while the base trains (a checkpoint per step), then the same command finishes the build."""
    secret = tmp_path / "s.secret"
    C.new_secret(secret)
    overrides = [o for o in TINY if not o.startswith("base.optim.epochs")] + [
        "base.optim.epochs=4", "base.engine.save_every_steps=1"]
    cmd = [sys.executable, "-m", "vidsme.cli", "challenge", "build", "--secret", str(secret), "--out",
           str(tmp_path / "dir"), "--size", "6", "--pretrain-videos", "16", "--quiet",
           *(arg for o in overrides for arg in ("--set", o))]
    dist_vars = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", SPLITS_DIR_ENV}
    env = {k: v for k, v in os.environ.items() if k not in dist_vars}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "dir" / "private" / "models" / "tiny-base" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not any(
            (p / "COMPLETE").is_file() for p in checkpoints.glob("step-*")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    assert not (tmp_path / "dir" / "public" / "challenge.json").exists()
    resumed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "resuming the challenge" in resumed.stdout and "resuming from" in resumed.stdout
    assert "splits: up to date" in resumed.stdout
    assert (tmp_path / "dir" / "public" / "challenge.json").is_file() and not checkpoints.exists()
