"""Vid-SME orders over a split's videos."""
from __future__ import annotations

import numpy as np

from vidsme.benchmark.orders import split_orders
from vidsme.video import write_mp4


def test_rows_get_their_videos_orders_over_the_whole_pool(tmp_path):
    rng = np.random.default_rng(0)
    for i, speed in enumerate((0, 2, 4)):  # static, slow, fast square
        frames = np.zeros((12, 48, 48, 3), dtype=np.uint8)
        for t in range(12):
            x = 4 + speed * t
            frames[t, 16:28, x : x + 12] = 255
        frames[:, :, :, 1] = (frames[:, :, :, 1] + rng.integers(0, 3, frames.shape[:3])).astype(np.uint8)
        write_mp4(tmp_path / f"v{i}.mp4", frames)
    rows = [{"id": "a", "video": "v2.mp4"}, {"id": "b", "video": "v0.mp4"}, {"id": "c", "video": "v2.mp4"},
            {"id": "d", "video": "v1.mp4"}]
    result = split_orders(rows, tmp_path, n_frames=8, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert result.videos == ("v0.mp4", "v1.mp4", "v2.mp4")
    q, r = result.for_rows(rows)
    # the fastest video has the largest k1, hence q = 1; the static one q = 1 + beta1 = 2
    assert q[0] == q[2] == 1.0 and q[1] == 2.0 and 1.0 < q[3] < 2.0
    assert np.all((r >= 1.0) & (r <= 1.1))
