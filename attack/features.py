"""Token-level features from logits: one vectorized pass per chunk of positions.

Every attack in this package reads these per-position numbers; none of them touches
logits again. For a batch of logits [batch, positions, vocab] we compute, at each
unmasked position and for a target token y (the real next token, or the argmax where
no real token exists, as on the video slice):

    target_logprob       log p_y
    entropy              Shannon H = -sum p log p                (Renyi alpha = 1)
    renyi_05             2 log sum sqrt(p)                        (alpha = 0.5)
    renyi_2              -log sum p^2                             (alpha = 2)
    renyi_inf            -log max p                               (alpha = inf)
    modified_entropy     -(1-p_y) log p_y - sum_{v!=y} p_v log(1-p_v)      (Song & Mittal 2021)
    modified_renyi_05    -2 [(1-p_y)(sqrt(p_y)-1) + sum_{v!=y} p_v (sqrt(1-p_v)-1)]   (VL-MIA)
    modified_renyi_2     (1-p_y)^2 + sum_{v!=y} p_v^2                                (VL-MIA)
    max_prob_gap         log p_(1) - log p_(2)
    mink_pp_z            (log p_y - mu) / sigma, mu, sigma^2 mean/variance of log p under p
    sharma_mittal        SME_{q,r}(p) at the sample's own (q, r)   (Vid-SME)

Why it is written this way (see docs/ATTACKS.md for the deviations from the reference):

* Cost on CPU is the count of transcendental functions per vocabulary entry. We pay one
  exp (softmax), one log1p (modified entropy) and, only when (q, r) are given, one exp
  and one expm1 (Sharma-Mittal: sum p^q, and sum p expm1((q-1) log p) for q near 1).
  sqrt and products cover alpha = 0.5 and 2; every sum over the vocabulary is a
  row-wise dot product; the argmax is found block-wise with vectorized amax.
* Work happens in chunks of rows, in float32 whatever the logits dtype, so no
  logits-sized intermediate ever exists; per-row finishing is float64.
* The argmax entry is taken out of every per-entry sum and added back per row from
  exact quantities. That is what keeps p_max -> 1 (a memorised token) exact: in
  float32, 1 - p_max would round to 0 and log(1 - p_max) to -inf.
* Variances are computed around the row mean (s - mu), never as E[x^2] - E[x]^2.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vidsme.errors import VidsmeError

TOKEN_FEATURES: tuple[str, ...] = (
    "target_logprob",
    "entropy",
    "renyi_05",
    "renyi_2",
    "renyi_inf",
    "modified_entropy",
    "modified_renyi_05",
    "modified_renyi_2",
    "max_prob_gap",
    "mink_pp_z",
    "sharma_mittal",
)

# Logits at -inf (banned vocabulary entries) are raised to this offset below the row
# maximum: exp() of it underflows to exactly 0 in float32, so probabilities are
# unchanged, while products like p * log p stay 0 instead of 0 * inf = NaN.
_NEG_FLOOR = -1.0e4
# Default chunk: 2^20 float32 entries (4 MiB) per work buffer. Measured on 2 cores at
# vocab 32k: smaller chunks pay per-op overhead, larger ones spill the cache.
_CHUNK_ELEMENTS = 1 << 20


class InvalidLogitsError(VidsmeError):
    """Logits with NaN or +inf at an unmasked position."""


@dataclass(frozen=True)
class FeatureOutput:
    """Features of one batch.

    token: name -> [batch, positions] float32, NaN at masked positions.
    mean_probs: [batch, vocab] float32 mean next-token distribution over each sample's
        unmasked positions (only when requested), the input of the sequence-level SME.
    """

    token: dict[str, torch.Tensor]
    mean_probs: torch.Tensor | None = None


def expm1_over_x(t: torch.Tensor) -> torch.Tensor:
    """(exp(t) - 1) / t with its limit 1 at t = 0, accurate for tiny |t|."""
    safe = torch.where(t == 0, torch.ones_like(t), t)
    return torch.where(t == 0, torch.ones_like(t), torch.expm1(safe) / safe)


def sharma_mittal_from_parts(
    entropy: torch.Tensor,
    tilted_sum: torch.Tensor,
    q: torch.Tensor,
    r: torch.Tensor,
    power_sum: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sharma-Mittal entropy from per-row sums, exact at every limit.

    SME_{q,r} = [(sum p^q)^{(1-r)/(1-q)} - 1] / (1 - r). With the Renyi entropy
    H_q = log(sum p^q) / (1 - q), this is expm1((1 - r) H_q) / (1 - r) = H_q * f((1-r) H_q)
    where f(t) = expm1(t)/t. We get log(sum p^q) as log1p(S), S = sum p expm1((q-1) log p),
    which stays accurate as q -> 1; at q = 1 exactly H_q is the Shannon entropy.

    Args:
        entropy: Shannon entropy per row (float64).
        tilted_sum: S = sum_v p_v expm1((q - 1) log p_v) per row (float64).
        q, r: Sharma-Mittal orders per row (float64), q > 0.
        power_sum: optionally sum p^q itself; where it is below 1/2, log of it is more
            accurate than log1p(S) (1 + S would cancel), so it is used there.
    """
    delta = q - 1.0
    safe_delta = torch.where(delta == 0, torch.ones_like(delta), delta)
    log_power_sum = torch.log1p(tilted_sum)
    if power_sum is not None:
        log_power_sum = torch.where(power_sum < 0.5, torch.log(power_sum), log_power_sum)
    renyi_q = torch.where(delta == 0, entropy, -log_power_sum / safe_delta)
    return renyi_q * expm1_over_x((1.0 - r) * renyi_q)


def _row_argmax(x: torch.Tensor, block: int = 128) -> torch.Tensor:
    """First index of each row's maximum, like x.argmax(-1) but ~4x faster on CPU.

    torch's argmax/topk reductions are not vectorized over the vocabulary; amax is.
    So: the max of each block of `block` entries (vectorized), the first block holding
    the row max, then the argmax within that block only. A NaN row yields some index
    whose value is NaN, which the caller rejects.
    """
    rows, vocab = x.shape
    n_blocks = vocab // block
    if n_blocks == 0:
        return x.argmax(-1)
    head = x[:, : n_blocks * block].reshape(rows, n_blocks, block)
    first_block = head.amax(-1).argmax(-1)
    inside = torch.gather(head, 1, first_block.view(rows, 1, 1).expand(rows, 1, block)).squeeze(1).argmax(-1)
    index = first_block * block + inside
    if vocab % block:
        tail_value, tail_index = x[:, n_blocks * block :].max(-1)
        head_value = x[torch.arange(rows, device=x.device), index]
        # strict '>' keeps the first occurrence, which lies in the head on ties
        index = torch.where(tail_value > head_value, n_blocks * block + tail_index, index)
    return index


def _rowdot(a: torch.Tensor, b: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """Row-wise dot product of two [rows, vocab] tensors, via a product into `scratch`.

    A product then a (cascade) sum is ~4x faster on CPU than bmm/vecdot (batched gemv
    with M = 1), and writing into a reused buffer avoids page-faulting a fresh
    allocation on every call (measured while writing perf/bench_features.py).
    """
    return torch.mul(a, b, out=scratch).sum(-1)


def _chunk_features(
    x: torch.Tensor,
    target: torch.Tensor | None,
    q: torch.Tensor | None,
    r: torch.Tensor | None,
    buf: tuple[torch.Tensor, ...],
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features for rows x [R, V] (any float dtype). Returns (features, p, argmax, p_max).

    p is the float32 probability buffer with the argmax entry set to 0 (valid until
    the next call reuses the buffer); p_max (float64) is the argmax probability.
    """
    rows, vocab = x.shape
    a, b, c, d, e = (t[:rows] for t in buf)  # s = x - max ; p ; scratch x2 ; dot-product scratch
    f64 = torch.float64

    amax = _row_argmax(x)
    rows_idx = torch.arange(rows, device=x.device)
    m = x[rows_idx, amax].to(torch.float32).unsqueeze(1)
    if not torch.isfinite(m).all():
        raise InvalidLogitsError("NaN or +inf logits (or a row with every logit at -inf)")
    torch.sub(x, m, out=a)  # float32 from any input dtype: no rounding of s in bf16
    # Gap to the runner-up: the max of s with the argmax entry taken out (-inf if none).
    a[rows_idx, amax] = float("-inf")
    gap = -a.amax(-1).to(f64)
    a[rows_idx, amax] = 0.0

    torch.exp(a, out=b)
    b[rows_idx, amax] = 0.0  # argmax handled exactly, per row
    z_minus_1 = b.sum(-1).to(f64)
    if not torch.isfinite(z_minus_1).all():
        raise InvalidLogitsError("NaN logits")
    log_z = torch.log1p(z_minus_1)  # log sum exp(s); exact when the max dominates
    b.mul_((1.0 / (1.0 + z_minus_1)).to(torch.float32).unsqueeze(1))  # p, argmax entry 0
    p_max = 1.0 / (1.0 + z_minus_1)
    one_minus_p_max = z_minus_1 / (1.0 + z_minus_1)
    log_p_max = -log_z

    # mu = E_p[s] (s = 0 at the argmax, so its term vanishes); -inf logits would give
    # 0 * inf here: raise them to a finite floor that leaves p unchanged, then redo.
    mu = _rowdot(b, a, e).to(f64)
    if not torch.isfinite(mu).all():
        a.clamp_(min=_NEG_FLOOR)
        mu = _rowdot(b, a, e).to(f64)
        if not torch.isfinite(mu).all():
            raise InvalidLogitsError("NaN logits")
    entropy = log_z - mu

    # Sums over the non-argmax entries ("others"); the argmax term is added per row from
    # exact quantities. Never add a term and subtract it again: with p_max -> 1 the
    # argmax term of sum p log(1 - p) is ~log(1 - p_max) and would swamp the rest.
    others_sq = _rowdot(b, b, e).to(f64)
    torch.sqrt(b, out=c)
    others_sqrt = c.sum(-1).to(f64)
    # f(p) = p log(1 - p), via log1p: accurate for the small p of the non-argmax entries.
    torch.neg(b, out=c).log1p_()
    others_log1m = _rowdot(b, c, e).to(f64)
    # g(p) = p (sqrt(1 - p) - 1) = -p^2 / (1 + sqrt(1 - p)): the second form has no cancellation.
    torch.sub(1.0, b, out=c).sqrt_().add_(1.0)
    torch.div(b, c, out=c)
    others_sqrt1m = -_rowdot(b, c, e).to(f64)

    feats: dict[str, torch.Tensor] = {}
    if q is not None and r is not None:
        delta = q - 1.0
        # u = (q - 1) log p = delta * (s - log Z), one fused pass
        bias = (-delta * log_z).to(torch.float32).unsqueeze(1)
        torch.mul(a, delta.to(torch.float32).unsqueeze(1), out=c).add_(bias)  # 2x faster than addcmul
        below_one = delta < 0
        if below_one.any():
            # q < 1: p^q can be far larger than p (even where p underflows), so
            # p * expm1(u) would overflow; use p^q - p there, which has no
            # cancellation once u > 1.
            big = c > 1.0
            direct = torch.exp(c + (a - log_z.to(torch.float32).unsqueeze(1))) - b
            c.clamp_(max=1.0).expm1_().mul_(b)
            c = torch.where(big, direct, c)
            c[rows_idx, amax] = 0.0
            tilted = c.sum(-1).to(f64)
            # sum p^q >= 1 for q < 1, so log1p(S) never cancels there. (Rows with q >= 1
            # that share a chunk with q < 1 rows also take this path: still exact in
            # the limits, ~1e-6 relative where sum p^q << 1.)
            power = None
        else:
            # Both sum p^q (accurate when it is far below 1) and S = sum p expm1(u)
            # (accurate when sum p^q is near 1, i.e. q -> 1): one cheap exp pass more.
            torch.exp(c, out=d)
            power = _rowdot(b, d, e).to(f64) + p_max * torch.exp(delta * log_p_max)
            c.expm1_()
            tilted = _rowdot(b, c, e).to(f64)
        tilted = tilted + p_max * torch.expm1(delta * log_p_max)
        feats["sharma_mittal"] = sharma_mittal_from_parts(entropy, tilted, q, r, power_sum=power)

    # Centre on mu only now (the SME pass above needed s): variance without cancellation.
    a.sub_(mu.to(torch.float32).unsqueeze(1))
    torch.mul(a, a, out=c)
    var = _rowdot(b, c, e).to(f64) + p_max * mu * mu

    if target is None:
        target = amax
    s_y = torch.where(target == amax, torch.zeros_like(mu), (a[rows_idx, target].to(f64) + mu))
    log_p_y = s_y - log_z
    is_max = target == amax
    p_y = torch.where(is_max, p_max, torch.exp(log_p_y))
    one_minus_p_y = torch.where(is_max, one_minus_p_max, -torch.expm1(log_p_y))

    def f_log1m(p: torch.Tensor, one_minus_p: torch.Tensor) -> torch.Tensor:
        return p * torch.log(one_minus_p)

    def g_sqrt1m(p: torch.Tensor, one_minus_p: torch.Tensor) -> torch.Tensor:
        return -p * p / (1.0 + torch.sqrt(one_minus_p))

    def excluding_target(others: torch.Tensor, term: Callable[..., torch.Tensor]) -> torch.Tensor:
        # sum over v != y: the "others" sum if y is the argmax, else swap y's term for the argmax's.
        swapped = others + term(p_max, one_minus_p_max) - term(p_y, one_minus_p_y)
        return torch.where(is_max, others, swapped)

    sigma = torch.sqrt(var.clamp(min=0.0))
    centred_y = s_y - mu

    feats.update(
        target_logprob=log_p_y,
        entropy=entropy,
        # log(sum) as log1p(sum - 1), with sum - 1 formed from exact 1 - p_max: keeps
        # the O(1 - p_max) value of near-one-hot rows instead of rounding it to 0.
        renyi_05=2.0 * torch.log1p(others_sqrt - one_minus_p_max / (1.0 + torch.sqrt(p_max))),
        renyi_2=-torch.log1p(others_sq - one_minus_p_max * (1.0 + p_max)),
        renyi_inf=log_z,
        modified_entropy=-one_minus_p_y * log_p_y - excluding_target(others_log1m, f_log1m),
        modified_renyi_05=-2.0
        # sqrt(p_y) - 1 = -(1 - p_y) / (1 + sqrt(p_y)): exact as p_y -> 1
        * (-one_minus_p_y * one_minus_p_y / (1.0 + torch.sqrt(p_y)) + excluding_target(others_sqrt1m, g_sqrt1m)),
        modified_renyi_2=one_minus_p_y * one_minus_p_y
        + excluding_target(others_sq, lambda p, _: p * p),
        max_prob_gap=gap,
        # sigma = 0 only when p is uniform on its support: then log p_y = mu, z := 0.
        mink_pp_z=torch.where(sigma > 0, centred_y / torch.where(sigma > 0, sigma, 1.0), torch.zeros_like(mu)),
    )
    return feats, b, amax, p_max


@torch.inference_mode()
def token_features(
    logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    q: torch.Tensor | None = None,
    r: torch.Tensor | None = None,
    *,
    mean_probs: bool = False,
    chunk_elements: int = _CHUNK_ELEMENTS,
) -> FeatureOutput:
    """Compute every per-position feature in one chunked pass over the logits.

    Args:
        logits: [batch, positions, vocab] (float32, bf16 or fp16); never modified.
        mask: [batch, positions] bool, True where a position counts (default: all).
        targets: [batch, positions] token ids; None means the argmax at each position.
        q, r: [batch] Sharma-Mittal orders per sample; both or neither. Without them the
            `sharma_mittal` feature is not computed (and its expm1 pass not paid).
        mean_probs: also return each sample's mean distribution over its positions.
        chunk_elements: work-buffer size in entries (rows per chunk = this // vocab).

    Returns:
        FeatureOutput with float32 [batch, positions] tensors, NaN at masked positions.

    Raises:
        InvalidLogitsError: NaN/+inf logits at an unmasked position (names it).
        ValueError: inconsistent shapes.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be [batch, positions, vocab], got shape {tuple(logits.shape)}")
    batch, positions, vocab = logits.shape
    device = logits.device
    if mask is None:
        mask = torch.ones(batch, positions, dtype=torch.bool, device=device)
    if mask.shape != (batch, positions):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match logits {(batch, positions)}")
    if targets is not None and targets.shape != (batch, positions):
        raise ValueError(f"targets shape {tuple(targets.shape)} does not match logits {(batch, positions)}")
    if (q is None) != (r is None):
        raise ValueError("pass both q and r (Sharma-Mittal orders) or neither")
    if q is not None:
        q = torch.as_tensor(q, dtype=torch.float64, device=device).reshape(-1)
        r = torch.as_tensor(r, dtype=torch.float64, device=device).reshape(-1)
        if q.numel() != batch or r.numel() != batch:
            raise ValueError(f"q and r need one value per sample ({batch}), got {q.numel()} and {r.numel()}")
        if not (torch.isfinite(q).all() and torch.isfinite(r).all() and (q > 0).all()):
            raise ValueError("Sharma-Mittal orders must be finite with q > 0")

    names = [n for n in TOKEN_FEATURES if n != "sharma_mittal" or q is not None]
    out = {n: torch.full((batch, positions), float("nan"), dtype=torch.float32, device=device) for n in names}
    mean = torch.zeros(batch, vocab, dtype=torch.float32, device=device) if mean_probs else None

    flat_logits = logits.reshape(batch * positions, vocab)
    flat_rows = mask.reshape(-1).nonzero().squeeze(1)
    rows_per_chunk = max(1, min(chunk_elements // vocab, flat_rows.numel()))
    buf = tuple(torch.empty(rows_per_chunk, vocab, dtype=torch.float32, device=device) for _ in range(5))
    flat_out = {n: t.view(-1) for n, t in out.items()}

    for start in range(0, flat_rows.numel(), rows_per_chunk):
        idx = flat_rows[start : start + rows_per_chunk]
        first, last = int(idx[0]), int(idx[-1])
        # Contiguous rows (the common, unpadded case) are a view: no gather copy.
        x = flat_logits[first : last + 1] if last - first + 1 == idx.numel() else flat_logits[idx]
        sample = idx // positions
        try:
            feats, probs, amax, p_max = _chunk_features(
                x,
                None if targets is None else targets.reshape(-1)[idx],
                None if q is None else q[sample],
                None if r is None else r[sample],
                buf,
            )
        except InvalidLogitsError as err:
            bad = _first_bad_row(x)
            where = idx[bad] if bad is not None else idx[0]
            raise InvalidLogitsError(
                f"{err} at sample {int(where) // positions}, position {int(where) % positions}: "
                "check the model's dtype (fp16 overflow?) and inputs"
            ) from None
        for n in names:
            flat_out[n][idx] = feats[n].to(torch.float32)
        if mean is not None:
            mean.index_add_(0, sample, probs)
            mean.index_put_((sample, amax), p_max.to(torch.float32), accumulate=True)
    if mean is not None:
        counts = mask.sum(1, keepdim=True).clamp(min=1).to(torch.float32)
        mean.div_(counts)
    return FeatureOutput(token=out, mean_probs=mean)


def _first_bad_row(x: torch.Tensor) -> int | None:
    """Index of the first row with a NaN or +inf logit, for error messages."""
    bad = (torch.isnan(x) | torch.isposinf(x)).any(-1).nonzero()
    return int(bad[0]) if bad.numel() else None


@torch.inference_mode()
def sequence_sharma_mittal(probs: torch.Tensor, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Sharma-Mittal entropy of whole distributions [batch, vocab] (e.g. mean_probs).

    The distributions are renormalised first, as the reference does with its averaged
    slice distribution. Zero entries are allowed (they become -inf logits).
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be [batch, vocab], got shape {tuple(probs.shape)}")
    if not torch.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    total = probs.sum(-1, keepdim=True)
    if (total <= 0).any():
        raise ValueError("a distribution sums to zero")
    logits = torch.log(probs.to(torch.float64) / total).to(torch.float32).unsqueeze(1)
    feats = token_features(logits, q=q, r=r).token
    return feats["sharma_mittal"][:, 0].to(torch.float64)
