"""Benchmark of vidsme.attack.features.token_features against its cost floor and the slow loop.

What it measures, in ONE run on IDENTICAL seeded logits [2, positions, vocab]
(2 = natural + reversed frame order; default 16 frames x 144 tokens = 2304 positions,
vocab 32000) with realistic peaked next-token distributions and per-sample
Sharma-Mittal orders q in [1, 2], r in [1, 1.1]:

1. features  - `token_features(logits, q=q, r=r)`: every token feature, Sharma-Mittal
               included (best of --repeats, after one warm-up call).
2. floor     - the "transcendental floor": one `torch.log_softmax(logits, -1)` plus one
               `.exp()` of its result, over the same logits (best of --repeats).
3. loop      - a per-token loop that re-implements the Vid-SME reference code's
               `get_meta_metrics` (one softmax + log_softmax over the slice, then per
               token: float64 clones, clamped probabilities, pow/log/sum per feature,
               the Sharma-Mittal branches) for each position with its sample's (q, r)
               and target = argmax, over --loop-tokens positions (default: all). This
               is the speed baseline the issue names (about 1 ms per token at vocab 32k).
               It is timed in blocks of 64 tokens. The headline speed-up is the best
               block's per-token time over token_features' best per-token time (best
               against best, as noise bursts on a shared machine can slow single blocks
               10x); the speed-up from the loop's mean per-token time is printed too.
               With fewer positions than the total, the loop runs on an evenly spaced
               subset and its all-token time is scaled from the mean (the output says so).
4. agreement - the reference code's clamps and epsilons change its values (see
               docs/ATTACKS.md), so values are checked against the exact float64
               definitions instead (`features_one_position`, vidsme.attack.features_reference)
               on --check-tokens evenly spaced positions: relative error
               max over positions of |a - b| / max(1, |b|). Exit code 1 if any
               feature's worst error exceeds 1e-4 (also for the bf16 check below).
5. bf16      - `token_features` on the same logits cast to bfloat16, timed against the
               float32 floor, and its values checked against the loop run on the
               bf16-rounded logits (on a subset of at most --bf16-check-tokens positions).

All figures that matter are ratios measured side by side in this one run (the timed
calls are interleaved repeat by repeat, so machine noise hits them alike); absolute
times are printed for context only.

Targets (CPU, vocab 32k):  features <= 2.5x the floor;  >= 5x faster per token than
the loop.  GPU (vocab 152,064):  >= 100x faster than the loop.

Run (from the repository root):

    .venv/bin/python perf/bench_features.py                       # full default size
    .venv/bin/python perf/bench_features.py --loop-tokens 256 --check-tokens 256   # quick run
    .venv/bin/python perf/bench_features.py --vocab 152064 --json perf_gpu.json   # on a GPU

The device is CUDA when available (override with --device); the loop then runs on the
same device as the logits, as the reference implementation would. On CUDA it also reports
the peak GPU memory of each measured call (features, floor, bf16, the loop); perf/gpu_check.sh
runs it at vocab 152,064 on a GPU.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from vidsme.provenance import run_provenance
from vidsme.attack.features import TOKEN_FEATURES, token_features
from vidsme.attack.features_reference import features_one_position

TOLERANCE = 1e-4
TARGET_FLOOR_RATIO = 2.5
TARGET_SPEEDUP_CPU = 5.0
TARGET_SPEEDUP_GPU = 100.0


# ----------------------------------------------------------------------------- inputs
def make_logits(batch: int, positions: int, vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded float32 logits [batch, positions, vocab] with peaked next-token distributions.

    Background: a scaled Gaussian (std 1.5). On top, each row gets a few boosted tokens:
    the top one is raised so that its probability hits a per-row target drawn
    log-uniformly in [0.05, 0.99]; three runners-up get smaller random probabilities
    (below the top one and below a quarter of the remaining mass each). Returns
    (logits, q, r) with per-sample q ~ U[1, 2], r ~ U[1, 1.1].
    """
    gen = torch.Generator().manual_seed(seed)
    rows = batch * positions
    sigma = 1.5
    logits = torch.randn(rows, vocab, generator=gen) * sigma
    # log of the background partition sum, per row (exact, not the V e^{sigma^2/2} estimate)
    log_bg = torch.logsumexp(logits, -1)
    # per-row target max probability, log-uniform in [0.05, 0.99]
    u = torch.rand(rows, generator=gen)
    p_top = torch.exp(math.log(0.05) + u * (math.log(0.99) - math.log(0.05)))
    n_boost = min(4, vocab)
    # distinct boosted ids per row: a random id plus evenly spaced offsets
    idx = (torch.randint(0, vocab, (rows, 1), generator=gen) + torch.arange(n_boost) * (vocab // n_boost)) % vocab
    # runners-up: each below the top token and below a quarter of the remaining mass
    rest = 1.0 - p_top
    cap = torch.minimum(p_top, rest / 4).unsqueeze(1)
    p_runners = torch.rand(rows, n_boost - 1, generator=gen) * 0.95 * cap
    p_boost = torch.cat([p_top.unsqueeze(1), p_runners], 1)
    p_bg = 1.0 - p_boost.sum(1, keepdim=True)
    # logit that gives probability p_i given the background mass p_bg: log(p_i / p_bg) + log_bg
    boost_logits = torch.log(p_boost / p_bg) + log_bg.unsqueeze(1)
    logits.scatter_(1, idx, boost_logits)
    logits = logits.view(batch, positions, vocab).contiguous()
    q = 1.0 + torch.rand(batch, generator=gen, dtype=torch.float64)
    r = 1.0 + 0.1 * torch.rand(batch, generator=gen, dtype=torch.float64)
    return logits, q, r


# ----------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    dt = time.perf_counter() - t0
    del out
    return dt


def timed_peak(fn, device: torch.device, peaks: dict[str, int], over: dict[str, int], name: str) -> float:
    """`timed`, plus on CUDA the peak memory of the call: `peaks[name]` the highest
    max_memory_allocated (reset before the call), `over[name]` that minus what was allocated
    before it (the call's own working memory). No-op bookkeeping on CPU."""
    if device.type != "cuda":
        return timed(fn, device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    dt = timed(fn, device)
    peak = torch.cuda.max_memory_allocated(device)
    peaks[name] = max(peaks.get(name, 0), peak)
    over[name] = max(over.get(name, 0), peak - before)
    return dt


def floor_op(logits: torch.Tensor) -> torch.Tensor:
    """The transcendental floor: one log_softmax and one exp over the logits."""
    return torch.log_softmax(logits, -1).exp()


# ----------------------------------------------------------------------------- loop
LOOP_BLOCK = 64  # tokens per timed block of the loop


def reference_style_token(probs: torch.Tensor, log_probs: torch.Tensor, token_id: int, q: float, r: float) -> float:
    """One token of the Vid-SME reference's `get_meta_metrics`, op for op (timing only).

    Kept faithful, clamps and epsilon branches included, so that its cost is the
    reference's cost; its values differ from the exact definitions where those clamps
    bite, which is why agreement is checked against `features_one_position` instead.
    """
    eps = 1e-10
    p = probs.clone().detach().to(dtype=torch.float64)
    lp = log_probs.clone().detach().to(dtype=torch.float64)
    _entropy = -(p * lp).sum().item()
    safe = torch.clamp(p, min=eps, max=1 - eps)
    _renyi_05 = 2 * torch.log(torch.sum(torch.pow(safe, 0.5))).item()
    _renyi_2 = -torch.log(torch.sum(torch.pow(safe, 2))).item()
    max_p = lp.max().item()
    rest = lp[lp != lp.max()]
    _gap = max_p - (rest.max().item() if rest.numel() else max_p)
    _target = lp[token_id].item()
    p_y = safe[token_id].item()
    _mod_entropy = (
        -(1 - p_y) * math.log(p_y) - (p * torch.log(1 - safe)).sum().item() + p_y * math.log(1 - p_y)
    )
    remaining = torch.cat((safe[:token_id], safe[token_id + 1 :]))
    for alpha in (0.5, 2):
        _mod_renyi = -(1 / abs(1 - alpha)) * (
            (1 - p_y) * p_y ** abs(1 - alpha)
            - (1 - p_y)
            + torch.sum(remaining * torch.pow(1 - remaining, abs(1 - alpha)))
            - torch.sum(remaining)
        ).item()
    sum_q = torch.clamp(torch.sum(torch.pow(torch.clamp(safe, min=eps), q)), min=eps)
    if abs(q - r) < eps:
        sme = (1 / (1 - q + eps)) * (sum_q - 1)
    elif abs(r - 1) < eps:
        sme = (1 / (1 - q + eps)) * torch.log(sum_q)
    else:
        exponent = max(-100.0, min(100.0, (1 - r) / (1 - q + eps)))
        sme = (1 / (1 - r + eps)) * (sum_q**exponent - 1)
    return float(sme)


def time_reference_loop(
    logits: torch.Tensor, flat_ids: torch.Tensor, q: torch.Tensor, r: torch.Tensor, positions: int
) -> list[tuple[int, float]]:
    """The reference-style loop over the given flat row ids; [(tokens, seconds)] per block.

    Each block pays, like the reference, one softmax and one log_softmax over its rows
    before the per-token work. Timing in blocks gives a best-block per-token figure,
    comparable with the best-of-repeats figures of the vectorized calls on a noisy machine.
    """
    flat = logits.reshape(-1, logits.shape[-1])
    qs, rs = q.tolist(), r.tolist()
    ids = flat_ids.tolist()
    blocks = []
    for start in range(0, len(ids), LOOP_BLOCK):
        block = ids[start : start + LOOP_BLOCK]
        _sync(flat.device)
        t0 = time.perf_counter()
        rows = flat[block]
        probs, log_probs = torch.softmax(rows, -1), torch.log_softmax(rows, -1)
        targets = probs.argmax(-1).tolist()  # the video slice's target: the argmax
        for k, (i, y) in enumerate(zip(block, targets)):
            s = i // positions
            reference_style_token(probs[k], log_probs[k], y, qs[s], rs[s])
        _sync(flat.device)
        blocks.append((len(block), time.perf_counter() - t0))
    return blocks


def exact_values(
    logits: torch.Tensor, flat_ids: torch.Tensor, q: torch.Tensor, r: torch.Tensor, positions: int
) -> dict[str, torch.Tensor]:
    """features_one_position (exact float64 definitions) over the given flat row ids."""
    flat = logits.reshape(-1, logits.shape[-1])
    qs, rs = q.tolist(), r.tolist()
    vals = {n: [] for n in TOKEN_FEATURES}
    for i in flat_ids.tolist():
        s = i // positions
        f = features_one_position(flat[i], None, qs[s], rs[s])  # target = argmax
        for n in TOKEN_FEATURES:
            vals[n].append(f[n])
    return {n: torch.tensor(v, dtype=torch.float64) for n, v in vals.items()}


def best_block_per_token(blocks: list[tuple[int, float]]) -> float:
    """Fastest per-token time over full blocks (the last, partial block only if alone)."""
    full = [b for b in blocks if b[0] == LOOP_BLOCK] or blocks
    return min(t / n for n, t in full)


def worst_errors(token: dict[str, torch.Tensor], flat_ids: torch.Tensor, ref: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per feature: max over positions of |a - b| / max(1, |b|) (inf if any NaN/inf mismatch)."""
    out = {}
    for n in TOKEN_FEATURES:
        a = token[n].reshape(-1)[flat_ids.to(token[n].device)].to(torch.float64).cpu()
        b = ref[n]
        err = (a - b).abs() / b.abs().clamp(min=1.0)
        both_same_inf = torch.isinf(a) & torch.isinf(b) & (a == b)
        err = torch.where(both_same_inf, torch.zeros_like(err), err)
        err = torch.where(torch.isnan(err), torch.full_like(err, math.inf), err)
        out[n] = float(err.max()) if err.numel() else 0.0
    return out


def spaced_ids(total: int, n: int) -> torch.Tensor:
    """n evenly spaced flat row ids out of total (all of them when n >= total)."""
    if n >= total:
        return torch.arange(total)
    return torch.linspace(0, total - 1, n).round().long().unique()


# ----------------------------------------------------------------------------- provenance
def measured_sources() -> dict[str, str]:
    """sha256 (first 16 hex digits) of the measured modules: the working tree may differ from the commit."""
    from vidsme.provenance import module_sources_sha256
    import vidsme.attack.features as feats_mod
    import vidsme.attack.features_reference as ref_mod

    return module_sources_sha256(feats_mod, ref_mod)


def fmt_s(t: float) -> str:
    return f"{t * 1e3:10.1f} ms" if t >= 1e-3 else f"{t * 1e6:10.1f} us"


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (no autograd anywhere, restored on return: tests call this in-process)."""
    with torch.no_grad():
        return _main(argv)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time token_features against the log_softmax+exp floor and the per-token "
        "reference-style loop, on identical seeded logits, and check their values agree.",
        epilog="example: .venv/bin/python perf/bench_features.py --loop-tokens 512 --json /tmp/bench.json",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--positions", type=int, default=2304, help="positions per sample (16 frames x 144 tokens)")
    parser.add_argument("--vocab", type=int, default=32000, help="vocabulary size")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (best is kept) for features/floor/bf16")
    parser.add_argument(
        "--loop-tokens", type=int, default=None,
        help="positions the timed reference-style loop runs on (evenly spaced; default: all 2 x positions); "
        "fewer makes the loop time a scaled estimate",
    )
    parser.add_argument("--check-tokens", type=int, default=1024, help="positions for the float32 value check")
    parser.add_argument("--bf16-check-tokens", type=int, default=256, help="positions for the bf16 value check")
    parser.add_argument("--seed", type=int, default=0, help="seed of the logits and (q, r)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto = cuda if available")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write all figures and provenance here")
    parser.add_argument(
        "--alt-chunk-elements", type=int, default=None, metavar="N",
        help="also time token_features with chunk_elements=N (context: its default chunk, 2^20 entries, is 6 rows "
        "at vocab 152k, so on a GPU the per-op launch cost dominates; this shows what a larger chunk gives)",
    )
    args = parser.parse_args(argv)
    if args.positions < 1 or args.vocab < 2 or args.repeats < 1:
        parser.error("need --positions >= 1, --vocab >= 2, --repeats >= 1")

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    batch = 2
    total = batch * args.positions
    loop_n = total if args.loop_tokens is None else max(1, min(args.loop_tokens, total))

    print(f"# bench_features: logits [{batch}, {args.positions}, {args.vocab}] on {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, seed {args.seed}", flush=True)
    sources = measured_sources()
    print("# measured sources (sha256/16): " + ", ".join(f"{k} {v}" for k, v in sources.items()), flush=True)
    logits, q, r = make_logits(batch, args.positions, args.vocab, args.seed)
    logits, q, r = logits.to(device), q.to(device), r.to(device)
    logits_bf16 = logits.to(torch.bfloat16)
    pmax = torch.softmax(logits.reshape(-1, args.vocab), -1).amax(-1).cpu()
    pmax_q = torch.quantile(pmax.double(), torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)).tolist()
    print(f"# max probability per row: min {pmax_q[0]:.3f}, median {pmax_q[1]:.3f}, max {pmax_q[2]:.3f}; "
          f"q = {[round(v, 4) for v in q.tolist()]}, r = {[round(v, 4) for v in r.tolist()]}", flush=True)
    del pmax

    run_features = lambda: token_features(logits, q=q, r=r)  # noqa: E731
    run_floor = lambda: floor_op(logits)  # noqa: E731
    run_bf16 = lambda: token_features(logits_bf16, q=q, r=r)  # noqa: E731
    alt = args.alt_chunk_elements
    run_alt = lambda: token_features(logits, q=q, r=r, chunk_elements=alt)  # noqa: E731

    # warm-up (allocator, thread pool, kernels), then interleaved timed repeats
    features_out = run_features()
    floor_op(logits)
    bf16_out = run_bf16()
    alt_out = run_alt() if alt else None
    times = {"features": [], "floor": [], "bf16": []}
    if alt:
        times["alt_chunk"] = []
    # CUDA only: peak memory per measured call (what the logits and outputs leave resident is
    # `resident`; `peaks` include it, `peaks_over` do not)
    peaks: dict[str, int] = {}
    peaks_over: dict[str, int] = {}
    resident = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    for k in range(args.repeats):
        times["features"].append(timed_peak(run_features, device, peaks, peaks_over, "features"))
        times["floor"].append(timed_peak(run_floor, device, peaks, peaks_over, "floor"))
        times["bf16"].append(timed_peak(run_bf16, device, peaks, peaks_over, "bf16"))
        if alt:
            times["alt_chunk"].append(timed_peak(run_alt, device, peaks, peaks_over, "alt_chunk"))
        print(f"# repeat {k + 1}/{args.repeats}: features {times['features'][-1]:.3f} s, "
              f"floor {times['floor'][-1]:.3f} s, bf16 {times['bf16'][-1]:.3f} s", flush=True)
    t_feat, t_floor, t_bf16 = (min(times[k]) for k in ("features", "floor", "bf16"))
    # per-repeat ratios (each from calls made back to back): their median is a
    # noise check on the best-of ratios
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731  (upper median)
    ratio_floor_med = med([f / g for f, g in zip(times["features"], times["floor"])])
    ratio_bf16_med = med([f / g for f, g in zip(times["bf16"], times["floor"])])

    # reference-style loop
    loop_ids = spaced_ids(total, loop_n)
    loop_n = loop_ids.numel()
    scaled = loop_n < total
    print(f"# loop over {loop_n} of {total} positions ...", flush=True)
    loop_ids_dev = loop_ids.to(device)
    blocks: list[tuple[int, float]] = []
    timed_peak(lambda: blocks.extend(time_reference_loop(logits, loop_ids_dev, q, r, args.positions)),
               device, peaks, peaks_over, "loop")
    t_loop = sum(t for _, t in blocks)
    loop_per_token_mean = t_loop / loop_n
    loop_per_token = best_block_per_token(blocks)
    loop_full = loop_per_token_mean * total  # == t_loop when not scaled
    feat_per_token = t_feat / total
    speedup = loop_per_token / feat_per_token
    speedup_mean = loop_per_token_mean / feat_per_token
    check_ids = spaced_ids(total, min(args.check_tokens, total))
    print(f"# exact float64 values on {check_ids.numel()} positions ...", flush=True)
    exact = exact_values(logits, check_ids.to(device), q, r, args.positions)
    errors = worst_errors(features_out.token, check_ids, exact)
    alt_fig = None
    if alt:
        t_alt = min(times["alt_chunk"])
        errors_alt = worst_errors(alt_out.token, check_ids, exact)
        alt_fig = {"chunk_elements": alt, "features_s": t_alt, "features_per_token_s": t_alt / total,
                   "speedup_per_token": loop_per_token / (t_alt / total), "worst_rel_error_float32": errors_alt,
                   "values_ok": all(e <= TOLERANCE for e in errors_alt.values())}

    # bf16 value check: the loop on the bf16-rounded logits (upcast exactly to float64)
    bf16_ids = spaced_ids(total, min(args.bf16_check_tokens, total))
    ref_bf16 = exact_values(logits_bf16, bf16_ids.to(device), q, r, args.positions)
    errors_bf16 = worst_errors(bf16_out.token, bf16_ids, ref_bf16)

    ratio_floor = t_feat / t_floor
    ratio_bf16 = t_bf16 / t_floor
    target_speedup = TARGET_SPEEDUP_GPU if device.type == "cuda" else TARGET_SPEEDUP_CPU
    ok_values = all(e <= TOLERANCE for e in errors.values()) and all(e <= TOLERANCE for e in errors_bf16.values())
    ok_values = ok_values and (alt_fig is None or alt_fig["values_ok"])

    # ------------------------------------------------------------------ report
    w = 44
    print()
    print(f"{'figure':<{w}} {'value':>16}  target")
    print("-" * (w + 28))
    print(f"{'token_features, float32 (best of ' + str(args.repeats) + ')':<{w}} {fmt_s(t_feat):>16}")
    print(f"{'floor: log_softmax + exp, float32':<{w}} {fmt_s(t_floor):>16}")
    print(f"{'ratio features / floor':<{w}} {ratio_floor:15.2f}x  <= {TARGET_FLOOR_RATIO}x "
          f"{'OK' if ratio_floor <= TARGET_FLOOR_RATIO else 'MISSED'}")
    print(f"{'  (median of per-repeat ratios)':<{w}} {ratio_floor_med:15.2f}x")
    print(f"{'token_features, bf16 logits':<{w}} {fmt_s(t_bf16):>16}")
    print(f"{'ratio bf16 features / float32 floor':<{w}} {ratio_bf16:15.2f}x")
    print(f"{'  (median of per-repeat ratios)':<{w}} {ratio_bf16_med:15.2f}x")
    print(f"{'loop, per token, best ' + str(LOOP_BLOCK) + '-token block':<{w}} {fmt_s(loop_per_token):>16}")
    print(f"{'loop, per token, mean over ' + str(loop_n) + ' tokens':<{w}} {fmt_s(loop_per_token_mean):>16}")
    loop_label = f"loop, all {total} tokens" + (" (SCALED from mean)" if scaled else " (measured)")
    print(f"{loop_label:<{w}} {fmt_s(loop_full):>16}")
    print(f"{'token_features, per token (best)':<{w}} {fmt_s(feat_per_token):>16}")
    print(f"{'speed-up per token (best block / best)':<{w}} {speedup:15.1f}x  >= {target_speedup:g}x "
          f"{'OK' if speedup >= target_speedup else 'MISSED'}")
    print(f"{'  (loop mean / best)':<{w}} {speedup_mean:15.1f}x")
    if alt_fig is not None:
        print(f"{'token_features, chunk_elements=' + str(alt) + ' (context)':<{w}} {fmt_s(alt_fig['features_s']):>16}")
        print(f"{'  speed-up per token over the loop':<{w}} {alt_fig['speedup_per_token']:15.1f}x  "
              f"(worst relative error {max(alt_fig['worst_rel_error_float32'].values()):.2e})")
    print(f"{'threads (torch.get_num_threads)':<{w}} {torch.get_num_threads():>16}")
    if device.type == "cuda":
        print(f"{'GPU memory resident before timing':<{w}} {resident / 2**20:13.1f} MiB")
        for name in ("features", "floor", "bf16", "loop", *(["alt_chunk"] if alt else [])):
            print(f"{'peak GPU memory, ' + name:<{w}} {peaks[name] / 2**20:13.1f} MiB  "
                  f"(+{peaks_over[name] / 2**20:.1f} MiB over what was allocated before the call)")
    print()
    print(f"worst relative error |a-b|/max(1,|b|) vs the exact float64 definitions (tolerance {TOLERANCE:g}):")
    print(f"  {'feature':<20} {'float32 (' + str(check_ids.numel()) + ' pos)':>20} "
          f"{'bf16 (' + str(bf16_ids.numel()) + ' pos)':>18}")
    for n in TOKEN_FEATURES:
        flag = "" if errors[n] <= TOLERANCE and errors_bf16[n] <= TOLERANCE else "  FAIL"
        print(f"  {n:<20} {errors[n]:20.2e} {errors_bf16[n]:18.2e}{flag}")
    print()
    if scaled:
        print(f"note: the loop ran on {loop_n} evenly spaced positions; its all-token time is "
              f"mean per-token time x {total}, not measured.")
    print("values:", "OK" if ok_values else f"FAIL (some feature's worst error exceeds {TOLERANCE:g})")

    if args.json is not None:
        record = {
            "figures": {
                "features_s": t_feat,
                "floor_s": t_floor,
                "ratio_features_over_floor": ratio_floor,
                "bf16_features_s": t_bf16,
                "ratio_bf16_features_over_float32_floor": ratio_bf16,
                "ratio_features_over_floor_median_per_repeat": ratio_floor_med,
                "ratio_bf16_over_floor_median_per_repeat": ratio_bf16_med,
                "loop_tokens_timed": loop_n,
                "loop_timed_s": t_loop,
                "loop_block_tokens": LOOP_BLOCK,
                "loop_per_token_best_block_s": loop_per_token,
                "loop_per_token_mean_s": loop_per_token_mean,
                "loop_all_tokens_s": loop_full,
                "loop_all_tokens_scaled": scaled,
                "features_per_token_s": feat_per_token,
                "speedup_per_token": speedup,
                "speedup_per_token_loop_mean": speedup_mean,
                "loop_block_times_s": [t for _, t in blocks],
                "all_times_s": times,
                "worst_rel_error_float32": errors,
                "worst_rel_error_bf16": errors_bf16,
                "check_tokens": check_ids.numel(),
                "bf16_check_tokens": bf16_ids.numel(),
                "values_ok": ok_values,
                "alt_chunk": alt_fig,  # None unless --alt-chunk-elements
                # CUDA only (None on CPU): bytes, max over repeats; see timed_peak
                "peak_memory_bytes": peaks if device.type == "cuda" else None,
                "peak_memory_over_allocated_bytes": peaks_over if device.type == "cuda" else None,
                "memory_resident_bytes": resident,
            },
            "targets": {
                "ratio_features_over_floor_max": TARGET_FLOOR_RATIO,
                "speedup_per_token_min": target_speedup,
                "tolerance": TOLERANCE,
            },
            "inputs": {
                "logits_shape": [batch, args.positions, args.vocab],
                "dtype": "float32 (bf16 cast for the bf16 figure)",
                "seed": args.seed,
                "q": q.tolist(),
                "r": r.tolist(),
                "max_prob_min_median_max": pmax_q,
            },
            "provenance": run_provenance(str(device), sources) | {"cuda": torch.version.cuda},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if ok_values else 1


if __name__ == "__main__":
    sys.exit(main())
