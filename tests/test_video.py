"""Reading videos: the Vid-SME sampling rule, both backends frame for frame, every failure.

Fixture videos are tiny H.264 mp4s whose frames can be told apart after lossy coding
(frame i has grey level 10 i + 10 and a bar at x = 4 i), so the tests check WHICH frames
came back, not just how many. Bad files are derived from them in tmp directories.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vidsme.video as video
from vidsme.errors import (
    CorruptVideoError,
    EmptyVideoError,
    UnsupportedVideoError,
    VideoError,
    VideoNotFoundError,
    VidsmeError,
)
from vidsme.video import VideoInfo, available_backends, frame_indices, probe_video, read_frames, write_mp4

av = pytest.importorskip("av")

T, H, W, FPS = 24, 64, 96, 8
BACKENDS = available_backends()
needs_decord = pytest.mark.skipif("decord" not in BACKENDS, reason="decord is not installed here")


def make_frames(t: int = T, h: int = H, w: int = W) -> np.ndarray:
    """Frame i: its own flat grey level (10 for the first, 245 for the last) and a white bar at x = 4 i."""
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i] = 10 + (235 * i) // max(t - 1, 1)
        x = (4 * i) % (w - 4)
        frames[i, :, x:x + 4] = 255
    return frames


def noise_frames(t: int = T, seed: int = 0) -> np.ndarray:
    """make_frames() on top, noise below: packets of a few KB, room to damage a frame's data."""
    frames = make_frames(t)
    frames[:, H // 2:] = np.random.default_rng(seed).integers(0, 256, (t, H // 2, W, 3), dtype=np.uint8)
    return frames


def identify(got: np.ndarray, source: np.ndarray) -> list[int]:
    """Index of the source frame nearest to each returned frame (top half); asserts the match is close."""
    top = slice(0, H // 2 - 8)  # away from the noise of noise_frames()
    diff = np.abs(got[:, None, top].astype(np.int16) - source[None, :, top].astype(np.int16)).mean(axis=(2, 3, 4))
    best = diff.argmin(axis=1)
    assert diff[np.arange(len(got)), best].max() < 3, "a returned frame matches no source frame"
    return best.tolist()


def packets(path) -> list[tuple[int, int]]:
    """(byte offset, size) of every video packet in decoding order."""
    with av.open(str(path)) as media:
        return [(p.pos, p.size) for p in media.demux(video=0) if p.size]


def remux(src, dst, *, faststart: bool = False, shift_frames: int = 0):
    """Copy the packets of `src` into a new mp4 (no re-encoding).

    faststart puts the index ('moov') before the frame data, as web downloads have it;
    shift_frames > 0 makes the first frames start before 0, which the mp4 muxer turns
    into an edit list that discards them (what `ffmpeg -ss ... -c copy` produces).
    """
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options=options) as out:
        stream_in = inp.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        for packet in inp.demux(stream_in):
            if packet.dts is None:
                continue
            packet.pts -= shift_frames * packet.duration
            packet.dts -= shift_frames * packet.duration
            packet.stream = stream_out
            out.mux(packet)
    return dst


def top_boxes(data: bytes) -> dict[bytes, int]:
    """Offsets of the top-level mp4 boxes."""
    pos, boxes = 0, {}
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        boxes[kind] = pos
        if size < 8:
            break
        pos += size
    return boxes


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("videos")
    v = {"frames": make_frames(), "noise_frames": noise_frames()}
    v["clip"] = write_mp4(d / "clip.mp4", v["frames"], fps=FPS)
    v["noise"] = write_mp4(d / "noise.mp4", v["noise_frames"], fps=FPS)
    v["fast"] = remux(v["noise"], d / "fast.mp4", faststart=True)
    return v


# ----------------------------------------------------------------------------- frame_indices
@pytest.mark.parametrize(
    "total, n, expected",
    [
        (24, 4, [0, 7, 15, 23]),
        (24, 1, [0]),
        (10, 10, list(range(10))),
        (5, 8, [0, 0, 1, 1, 2, 2, 3, 4]),  # fewer frames than asked: repeats, like the reference
        (1, 3, [0, 0, 0]),
        (100, 16, None),
        (7, 3, [0, 3, 6]),
    ],
)
def test_frame_indices_is_the_reference_linspace(total, n, expected):
    got = frame_indices(total, n)
    assert got.dtype == np.int64 and got.shape == (n,)
    np.testing.assert_array_equal(got, np.linspace(0, total - 1, n, dtype=int))
    if expected is not None:
        assert got.tolist() == expected


@pytest.mark.parametrize("total, n", [(0, 4), (4, 0), (-1, 3), (5, -2)])
def test_frame_indices_rejects_empty_requests(total, n):
    with pytest.raises(ValueError):
        frame_indices(total, n)


# ----------------------------------------------------------------------------- reading
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [1, 4, 16, 24, 40])
def test_read_frames_returns_the_sampled_frames(videos, backend, n):
    frames = read_frames(videos["clip"], n, backend=backend)
    assert frames.shape == (n, H, W, 3) and frames.dtype == np.uint8 and frames.flags.c_contiguous
    assert identify(frames, videos["frames"]) == frame_indices(T, n).tolist()


@needs_decord
@pytest.mark.parametrize("n", [1, 4, 16, 40])
@pytest.mark.parametrize("name", ["clip", "noise", "fast"])
def test_decord_and_pyav_return_identical_frames(videos, name, n):
    assert np.array_equal(read_frames(videos[name], n, "decord"), read_frames(videos[name], n, "pyav"))


@needs_decord
def test_backends_agree_on_b_frames_and_seeks(tmp_path):
    """B-frames reorder decoding; decord seeks between GOPs where PyAV decodes straight through."""
    source = make_frames(60)
    path = tmp_path / "bframes.mp4"
    with av.open(str(path), "w", format="mp4") as media:
        stream = media.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "18", "bf": "3", "g": "12"}
        for frame in source:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                media.mux(packet)
        for packet in stream.encode():
            media.mux(packet)
    assert probe_video(path, "decord") == probe_video(path, "pyav")
    for n in (1, 3, 4, 16, 60, 90):
        frames = read_frames(path, n, "decord")
        assert np.array_equal(frames, read_frames(path, n, "pyav")), n
        assert identify(frames, source) == frame_indices(60, n).tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_edit_list_discarded_frames_are_not_counted(tmp_path, videos, backend):
    """A clip cut with an edit list: 2 frames are in the file but never shown.

    decord counts them and, depending on the indices asked for, returns them or the last
    frame twice; both backends must report 22 frames and return the same ones.
    """
    path = remux(videos["noise"], tmp_path / "cut.mp4", shift_frames=2)
    info = probe_video(path, backend)
    assert info.num_frames == T - 2 and info.duration_s == pytest.approx((T - 2) / FPS)
    for n in (1, 4, 5, 16, 22, 30):
        frames = read_frames(path, n, backend)
        assert identify(frames, videos["noise_frames"]) == (frame_indices(T - 2, n) + 2).tolist(), n
        if backend == "decord":
            assert np.array_equal(frames, read_frames(path, n, "pyav")), n


@pytest.mark.parametrize("backend", BACKENDS)
def test_decord_width_bug_is_worked_around(tmp_path, backend):
    """decord 0.6.0 returns [H, W, 4] rows (or fails) for widths like 48; the result must not change."""
    source = make_frames(12, h=32, w=48)
    path = write_mp4(tmp_path / "w48.mp4", source, fps=FPS)
    for n in (1, 5, 12):
        frames = read_frames(path, n, backend)
        assert frames.shape == (n, 32, 48, 3)
        assert identify(frames, source) == frame_indices(12, n).tolist()
        assert np.array_equal(frames, read_frames(path, n, "pyav"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_video_fields(videos, backend):
    path = videos["clip"]
    info = probe_video(path, backend)
    assert isinstance(info, VideoInfo)
    assert info == VideoInfo(
        path=str(path), num_frames=T, fps=float(FPS), width=W, height=H,
        duration_s=T / FPS, size_bytes=path.stat().st_size, codec="h264",
    )
    with pytest.raises(AttributeError):  # frozen
        info.num_frames = 3  # type: ignore[misc]


@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_video_takes_str_paths_and_other_rates(tmp_path, backend):
    path = write_mp4(tmp_path / "rate.mp4", make_frames(10), fps=25)
    info = probe_video(str(path), backend)
    assert (info.num_frames, info.fps, info.duration_s, info.path) == (10, 25.0, pytest.approx(0.4), str(path))


def test_read_frames_rejects_bad_arguments(videos):
    with pytest.raises(ValueError):
        read_frames(videos["clip"], 0)
    with pytest.raises(ValueError, match="'decord'.*'pyav'"):
        read_frames(videos["clip"], 4, backend="opencv")
    with pytest.raises(ValueError, match="'decord'.*'pyav'"):
        probe_video(videos["clip"], backend="Decord")


# ----------------------------------------------------------------------------- failures
def _truncate_at_packet(videos, tmp_path, *, fix_mdat: bool):
    """Faststart mp4 cut exactly before packet 10: decoders see a clean 10-frame file."""
    data = videos["fast"].read_bytes()
    cut = packets(videos["fast"])[10][0]
    data = bytearray(data[:cut])
    if fix_mdat:  # hide the cut from the box check too: only the sample count can tell
        mdat = top_boxes(bytes(data))[b"mdat"]
        data[mdat:mdat + 4] = struct.pack(">I", len(data) - mdat)
    path = tmp_path / "cut_at_sample.mp4"
    path.write_bytes(bytes(data))
    return path


def _damage_nal_header(videos, tmp_path):
    data = bytearray(videos["noise"].read_bytes())
    pos = packets(videos["noise"])[10][0]
    data[pos:pos + 16] = b"\xab" * 16  # NAL length prefix: the decoder rejects the packet
    path = tmp_path / "bad_nal.mp4"
    path.write_bytes(bytes(data))
    return path


def _audio_only(tmp_path):
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w", format="mp4") as media:
        stream = media.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                media.mux(packet)
        for packet in stream.encode():
            media.mux(packet)
    return path


def _no_tracks(tmp_path):
    path = tmp_path / "no_tracks.mp4"
    with av.open(str(path), "w", format="mp4") as media:
        stream = media.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        media.start_encoding()  # header written, not a single frame
    return path


def _image(tmp_path, ext):
    import cv2

    path = tmp_path / f"image{ext}"
    cv2.imwrite(str(path), np.full((32, 32, 3), 128, np.uint8))
    renamed = tmp_path / f"image_{ext[1:]}.mp4"
    path.rename(renamed)
    return renamed


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


FAILURES = {
    "missing": (VideoNotFoundError, lambda v, d: d / "nope.mp4"),
    "missing_parent": (VideoNotFoundError, lambda v, d: d / "no_dir" / "nope.mp4"),
    "directory": (UnsupportedVideoError, lambda v, d: (d / "folder.mp4").mkdir() or d / "folder.mp4"),
    "zero_bytes": (CorruptVideoError, lambda v, d: _write(d, "zero.mp4", b"")),
    # write_mp4 puts the index at the end: any cut loses it
    "truncated_half": (CorruptVideoError, lambda v, d: _write(d, "half.mp4", v["clip"].read_bytes()[:v["clip"].stat().st_size // 2])),
    "truncated_index": (CorruptVideoError, lambda v, d: _write(d, "idx.mp4", v["clip"].read_bytes()[:-40])),
    "header_only": (CorruptVideoError, lambda v, d: _write(d, "head.mp4", v["clip"].read_bytes()[:100])),
    # index first (web downloads): frames after the cut are missing
    "truncated_mid_frame": (CorruptVideoError, lambda v, d: _write(d, "mid.mp4", v["fast"].read_bytes()[:60_000])),
    "truncated_at_sample": (CorruptVideoError, lambda v, d: _truncate_at_packet(v, d, fix_mdat=False)),
    "truncated_mdat_fixed": (CorruptVideoError, lambda v, d: _truncate_at_packet(v, d, fix_mdat=True)),
    "damaged_nal": (CorruptVideoError, lambda v, d: _damage_nal_header(v, d)),  # read_frames only
    "text": (UnsupportedVideoError, lambda v, d: _write(d, "notes.mp4", b"not a video\n" * 40)),
    "text_txt": (UnsupportedVideoError, lambda v, d: _write(d, "notes.txt", b"not a video\n" * 40)),  # ffmpeg: ANSI art
    "subtitles": (UnsupportedVideoError, lambda v, d: _write(d, "subs.mp4", b"1\n00:00:01,000 --> 00:00:02,000\nhi\n\n")),
    "png": (UnsupportedVideoError, lambda v, d: _image(d, ".png")),
    "jpeg": (UnsupportedVideoError, lambda v, d: _image(d, ".jpg")),
    "audio_only": (EmptyVideoError, lambda v, d: _audio_only(d)),
    "no_tracks": (EmptyVideoError, lambda v, d: _no_tracks(d)),
}


READ_ONLY_FAILURES = {"damaged_nal"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(FAILURES))
def test_each_failure_raises_its_own_error(videos, tmp_path, case, backend):
    expected, make = FAILURES[case]
    path = make(videos, tmp_path)
    calls = [lambda: read_frames(path, 16, backend)]
    if case not in READ_ONLY_FAILURES:
        calls.append(lambda: probe_video(path, backend))
    else:  # damage inside a frame's data: probing does not decode, so it cannot see it
        assert probe_video(path, backend).num_frames == T
    for call in calls:
        with pytest.raises(VideoError) as caught:
            call()
        err = caught.value
        assert type(err) is expected, f"{case}: {type(err).__name__}: {err}"
        assert err.path == str(path) and str(err).startswith(f"{path}: ")


def test_truncation_messages_say_what_is_missing(videos, tmp_path):
    with pytest.raises(CorruptVideoError, match="'mdat' box .* declares"):
        read_frames(_truncate_at_packet(videos, tmp_path, fix_mdat=False), 4, "pyav")
    with pytest.raises(CorruptVideoError, match=f"indexes {T} frames but only 10"):
        read_frames(_truncate_at_packet(videos, tmp_path, fix_mdat=True), 4, "pyav")


def test_pyav_rejects_frames_the_decoder_concealed(videos, tmp_path):
    """Bytes flipped inside frame 10's data: the decoder conceals and flags the frame.

    (decord returns the concealed frame: a documented limit of the decord backend.)
    """
    data = bytearray(videos["noise"].read_bytes())
    pos = packets(videos["noise"])[10][0] + 100
    data[pos:pos + 500] = bytes((k * 37) % 256 for k in range(pos, pos + 500))
    path = _write(tmp_path, "concealed.mp4", bytes(data))
    assert read_frames(path, 1, "pyav").shape == (1, H, W, 3)  # frame 0 is intact and decoded alone
    with pytest.raises(CorruptVideoError, match="frame 10 is damaged"):
        read_frames(path, T, "pyav")


@needs_decord
def test_raw_decord_neither_crashes_nor_hangs_on_bad_files(videos, tmp_path):
    """Why validating first is about classification, not survival: decord fails cleanly."""
    paths = []
    for case, (_, make) in sorted(FAILURES.items()):
        if case not in ("missing", "missing_parent"):
            (tmp_path / case).mkdir()
            paths.append(make(videos, tmp_path / case))
    script = textwrap.dedent("""
        import sys, decord
        for path in sys.argv[1:]:
            try:
                vr = decord.VideoReader(path)
                vr.get_batch(list(range(len(vr))))
                print("read", path)
            except Exception as err:
                print(type(err).__name__, path)
        print("done")
    """)
    proc = subprocess.run([sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]  # a segfault would be -11
    assert proc.stdout.splitlines()[-1] == "done"


# ----------------------------------------------------------------------------- backends
def test_available_backends_prefers_decord():
    assert BACKENDS[-1] == "pyav" and set(BACKENDS) <= {"decord", "pyav"}
    assert BACKENDS == sorted(BACKENDS, key=["decord", "pyav"].index)


def test_auto_falls_back_to_pyav_without_decord(videos, monkeypatch):
    expected = read_frames(videos["clip"], 5, "pyav")
    monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` now raises ImportError
    assert available_backends() == ["pyav"]
    assert np.array_equal(read_frames(videos["clip"], 5), expected)
    assert probe_video(videos["clip"]).num_frames == T
    with pytest.raises(VidsmeError, match="'decord' is not available"):
        read_frames(videos["clip"], 5, backend="decord")


def test_importing_vidsme_video_is_cheap_and_needs_no_decord():
    script = (
        "import sys; sys.modules['decord'] = None\n"
        "import vidsme.video as v\n"
        "assert 'av' not in sys.modules, 'av imported eagerly'\n"
        "print(v.available_backends())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['pyav']"


def test_module_exports_match_the_documented_api():
    assert video.BACKENDS == ("decord", "pyav")
    for name in ("frame_indices", "VideoInfo", "available_backends", "probe_video", "read_frames", "write_mp4"):
        assert callable(getattr(video, name))


def test_video_errors_survive_pickling_across_processes():
    import pickle

    from vidsme.errors import CorruptVideoError

    err = pickle.loads(pickle.dumps(CorruptVideoError("/data/x.mp4", "truncated", "re-download it")))
    assert type(err) is CorruptVideoError and err.path == "/data/x.mp4"
    assert str(err) == "/data/x.mp4: truncated. re-download it"
