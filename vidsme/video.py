"""Video files: writing mp4s (synthetic data, tests) and reading sampled frames.

Frames are uint8 RGB arrays [n, H, W, 3] everywhere in vidsme. Reading: `probe_video`,
`read_frames` (decord or PyAV, identical frames) and `frame_indices`, the sampling rule.
"""
from __future__ import annotations

import importlib
import operator
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidsme.errors import (
    CorruptVideoError,
    EmptyVideoError,
    UnsupportedVideoError,
    VideoError,
    VideoNotFoundError,
    VidsmeError,
)

if TYPE_CHECKING:  # annotations only: both libraries are imported lazily
    import av.container
    import decord


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 8, crf: int = 18) -> Path:
    """Encode uint8 RGB frames [n, H, W, 3] as an H.264 mp4 (yuv420p), deterministically.

    One encoder thread and fixed x264 settings: the same frames give the same bytes
    (the synthetic datasets' checksums rely on it). H and W must be even (yuv420p).
    """
    import av  # imported here: only writers need it

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [n>0, H, W, 3], got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H and W must be even for yuv420p, got {height}x{width}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "medium", "tune": "zerolatency"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ============================================================================ reading
#
# Both backends go through one PyAV inspection first (`_inspect`): header, one demux pass,
# no decoding for mp4/mov/avi. It is what makes decord (0.6.0) safe to use:
#   * decord's errors cannot tell a truncated mp4 from a text file (both are "moov atom
#     not found" RuntimeErrors), and a few are bare AssertionErrors;
#   * an mp4 cut exactly at a sample boundary opens fine in both libraries and just looks
#     shorter: only the container's own index (declared sample count, 'mdat' box size)
#     shows the loss;
#   * on files whose edit list discards frames (clips cut with `ffmpeg -c copy`) decord's
#     len() counts the discarded frames, its sequential reads skip them but its seeks do
#     not, so the same index gives different frames depending on the other indices asked
#     for, and the extra indices repeat the last frame;
#   * for some frame widths (2..24, 48, 72 px among those <= 128) decord returns padded
#     [H, W, 4] frames or fails to copy the batch.
# In the last two cases PyAV reads the file: it returns exactly the frames decord returns
# wherever decord is right. decord never crashed or hung on the damaged files tried
# (truncations, byte flips in moov and mdat, text, images, directories, audio-only).
# Known limit: damage the H.264 decoder conceals (flipped bytes inside a frame's data)
# is caught by PyAV (frame.is_corrupt) but not by decord, which returns the concealed frame.

BACKENDS = ("decord", "pyav")
_BACKEND_NAMES = ("auto", *BACKENDS)

# Demuxers that ffmpeg happily opens but that are not videos: still images (a .png renamed
# .mp4 opens as png_pipe with one frame) and text rendered as ANSI art (any *.txt).
_NOT_VIDEO_FORMATS = {"image2", "image2pipe", "tty"}

# ISO BMFF (mp4/mov/m4v/3gp) top-level box types that can open a file.
_BMFF_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp", b"sidx", b"moof"}

_FIX_REDOWNLOAD = "Re-download or re-copy it (compare size/sha256 with the source) or re-encode it from the original"
_FIX_CONVERT = "Pass a video file (e.g. an H.264 mp4); convert other media with `ffmpeg -i IN -c:v libx264 OUT.mp4`"


def frame_indices(total_frames: int, n: int) -> np.ndarray:
    """The Vid-SME reference sampling rule: `np.linspace(0, total_frames - 1, n, dtype=int)`.

    Returns int64 indices, first and last frame included (for n >= 2). When the video has
    fewer frames than asked for, indices repeat (the reference does the same rather than
    returning fewer frames, so every video yields exactly n frames).
    """
    total_frames, n = operator.index(total_frames), operator.index(n)  # 2.5 frames is a bug upstream
    if total_frames < 1:
        raise ValueError(f"total_frames must be >= 1, got {total_frames}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return np.linspace(0, total_frames - 1, n, dtype=int).astype(np.int64, copy=False)


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` reports about one file (same values from either backend)."""

    path: str
    num_frames: int  # frames the reader can return, i.e. what frame_indices() samples from
    fps: float  # average frame rate; 0.0 when the container does not say
    width: int
    height: int
    duration_s: float  # num_frames / fps (the span the frames cover); container duration if fps is unknown
    size_bytes: int
    codec: str  # ffmpeg decoder name, e.g. "h264"


def available_backends() -> list[str]:
    """The reading backends that import here, in preference order (decord first)."""
    found = []
    for name, module in (("decord", "decord"), ("pyav", "av")):
        try:
            importlib.import_module(module)
        except Exception:  # ImportError, or a broken native library (OSError): either way not usable
            continue
        found.append(name)
    return found


def probe_video(path: str | Path, backend: str = "auto") -> VideoInfo:
    """Metadata of a video file; raises a `VideoError` subclass naming the path if it cannot be read.

    backend: "auto" (decord if importable, else PyAV), "decord" or "pyav". Both report the
    same num_frames/fps/size for the same file.
    """
    backend = _resolve_backend(backend)
    info = _inspect(path)
    if backend == "decord":
        _decord_open(info)  # decord must at least open what it is asked to probe
    return info.video_info()


def read_frames(path: str | Path, n: int, backend: str = "auto") -> np.ndarray:
    """n frames sampled at `frame_indices(num_frames, n)`, as uint8 RGB [n, H, W, 3].

    Both backends return exactly the same arrays for the same file. Every failure is a
    `VideoError` subclass that names the path: VideoNotFoundError, CorruptVideoError
    (empty, truncated or damaged file), EmptyVideoError (no video frames),
    UnsupportedVideoError (not a video: text, image, directory). A library error never
    escapes, and beyond the repeats of the sampling rule itself (n > num_frames) no frame
    is padded, repeated or replaced to hide a decoding problem. One difference: damage the
    decoder conceals inside a frame raises with "pyav" but goes unnoticed by "decord".
    """
    backend = _resolve_backend(backend)
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    info = _inspect(path)
    if backend == "decord":
        frames = _read_decord(info, n)
    else:
        frames = _read_pyav(info, frame_indices(info.num_frames, n))
    return np.ascontiguousarray(frames, dtype=np.uint8)


# ----------------------------------------------------------------------------- helpers
@dataclass(frozen=True)
class _Inspected:
    """What the PyAV inspection found: enough to read the file with either backend."""

    path: Path
    size_bytes: int
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    stream_duration_s: float
    packets: int  # frames in the container's index, including those an edit list discards

    def video_info(self) -> VideoInfo:
        # duration from the frames both backends return, so it agrees with num_frames and fps
        duration = self.num_frames / self.fps if self.fps > 0 else self.stream_duration_s
        return VideoInfo(str(self.path), self.num_frames, self.fps, self.width, self.height, duration,
                         self.size_bytes, self.codec)


def _resolve_backend(backend: str) -> str:
    if backend not in _BACKEND_NAMES:
        known = ", ".join(repr(b) for b in _BACKEND_NAMES)
        raise ValueError(f"unknown video backend {backend!r}; known backends: {known}")
    available = available_backends()
    if backend == "auto":
        if not available:
            raise VidsmeError("no video backend can be imported: install PyAV (`pip install av`)")
        return available[0]
    if backend not in available:
        module = "av" if backend == "pyav" else backend
        raise VidsmeError(f"video backend {backend!r} is not available here (`import {module}` fails); "
                          f"install it or use backend='auto' (available: {available or 'none'})")
    # decord is only used after the PyAV inspection (see above), so it needs PyAV too
    if backend == "decord" and "pyav" not in available:
        raise VidsmeError("backend 'decord' also needs PyAV to validate files first: `pip install av`")
    return backend


def _short(err: BaseException) -> str:
    """One readable line from a library error (decord's carry timestamps and C++ paths)."""
    text = str(err).strip() or type(err).__name__
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("Stack trace")]
    line = lines[0] if lines else text
    line = re.sub(r"^(\[[0-9:]+\] \S+:\d+: )+", "", line)  # "[18:35:00] /src/x.cc:171: " prefixes
    return line[:200]


def _sniff_container(head: bytes) -> str | None:
    """The media container the first bytes announce, or None (text, image, unknown)."""
    if len(head) >= 8 and head[4:8] in _BMFF_FIRST_BOXES:
        return "mp4/mov"
    signatures = {
        b"\x1a\x45\xdf\xa3": "matroska",  # mkv / webm
        b"FLV": "flv",
        b"OggS": "ogg",
        b"\x00\x00\x01\xba": "mpeg-ps",
        b"\x30\x26\xb2\x75\x8e\x66\xcf\x11": "asf",
    }
    for magic, name in signatures.items():
        if head.startswith(magic):
            return name
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "mpeg-ts"
    return None


def _bmff_overrun(path: Path, size: int) -> str | None:
    """Why an mp4/mov is truncated, judged from its top-level boxes alone; None if it is not.

    A box (typically 'mdat', the frame data) declaring more bytes than the file holds is
    the one sure sign of a cut file: decoders just stop at the last complete sample.
    """
    with open(path, "rb") as f:
        pos = 0
        while pos + 8 <= size:
            f.seek(pos)
            header = f.read(16)
            box_size, kind = struct.unpack(">I4s", header[:8])
            if box_size == 1:  # 64-bit size follows
                if len(header) < 16:
                    return f"the file ends inside the header of its '{kind.decode('latin-1')}' box"
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # "extends to the end of the file": cannot overrun
                return None
            if box_size < 8 or not all(32 <= c < 127 for c in kind):
                return None  # not a box (trailing bytes): nothing more to judge
            if pos + box_size > size:
                return (f"truncated: its '{kind.decode('latin-1')}' box at byte {pos} declares {box_size} bytes "
                        f"but only {size - pos} remain")
            pos += box_size
    return None


def _check_file(path: str | Path) -> tuple[Path, int, str | None]:
    """Existence, type and size checks before any library sees the file. -> (path, size, container)."""
    p = Path(path)
    try:
        st = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise VideoNotFoundError(p, "no such file", "Check the path (and the video root it is relative to)") from None
    except OSError as err:
        raise VideoError(p, f"cannot be accessed ({err.strerror or err})", "Check the path and its permissions") from None
    if stat.S_ISDIR(st.st_mode):
        raise UnsupportedVideoError(p, "is a directory, not a video file", "Pass the path of a video file inside it")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block the libraries forever
        raise UnsupportedVideoError(p, "is not a regular file (pipe, device or socket)", "Pass a video file on disk")
    if st.st_size == 0:
        raise CorruptVideoError(p, "the file is empty (0 bytes), probably an interrupted download or copy",
                                _FIX_REDOWNLOAD)
    try:
        with open(p, "rb") as f:
            head = f.read(512)
        container = _sniff_container(head)
        overrun = _bmff_overrun(p, st.st_size) if container == "mp4/mov" else None
    except OSError as err:
        raise VideoError(p, f"cannot be read ({err.strerror or err})", "Check the file's permissions") from None
    if overrun:
        raise CorruptVideoError(p, overrun, _FIX_REDOWNLOAD)
    return p, st.st_size, container


def _inspect(path: str | Path) -> _Inspected:
    """Validate `path` with PyAV and count its frames; raises the right VideoError subclass."""
    import av  # lazy: importing vidsme.video must stay cheap

    p, size, container = _check_file(path)
    try:
        with av.open(str(p)) as media:
            return _inspect_open(p, size, container, media)
    except VideoError:
        raise
    except Exception as err:  # av.error.*, but also IndexError/ValueError from odd metadata
        if container is None:
            raise UnsupportedVideoError(p, f"is not a video container ffmpeg can open ({_short(err)})",
                                        _FIX_CONVERT) from None
        raise CorruptVideoError(p, f"looks like a {container} file but cannot be opened ({_short(err)})",
                                _FIX_REDOWNLOAD) from None


def _inspect_open(p: Path, size: int, container: str | None, media: av.container.InputContainer) -> _Inspected:
    fmt = media.format.name
    if fmt in _NOT_VIDEO_FORMATS or fmt.endswith("_pipe"):
        raise UnsupportedVideoError(p, f"is not a video (ffmpeg reads it as '{fmt}', a still image or text)",
                                    _FIX_CONVERT)
    if not media.streams.video:
        kinds = "/".join(sorted({s.type for s in media.streams})) or "none"
        if container is None:  # e.g. an mp3 or a subtitle file renamed .mp4
            raise UnsupportedVideoError(p, f"is not a video: ffmpeg reads it as '{fmt}' and finds no video "
                                        f"stream (streams: {kinds})", _FIX_CONVERT)
        raise EmptyVideoError(p, f"the {container} container holds no video stream (streams: {kinds})",
                              "Re-export the video with its video track, or drop it from the split")
    stream = media.streams.video[0]
    codec = stream.codec_context.name if stream.codec_context is not None else ""
    width, height = int(stream.width or 0), int(stream.height or 0)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    declared = int(stream.frames or 0)
    if declared > 0:
        # mp4/mov/avi index every sample: count packets (no decoding). Packets flagged
        # "discard" (edit lists) are never shown by a player, nor returned by PyAV.
        total = shown = 0
        try:
            for packet in media.demux(stream):
                if packet.size:
                    total += 1
                    shown += not packet.is_discard
        except Exception as err:
            raise CorruptVideoError(p, f"reading its packets failed after {total} frames ({_short(err)})",
                                    _FIX_REDOWNLOAD) from None
        if total < declared:
            raise CorruptVideoError(p, f"truncated: the container indexes {declared} frames but only {total} are "
                                    "in the file", _FIX_REDOWNLOAD)
        count, packets = shown, total
    else:
        # no frame count in the header (mkv/webm, ts): count by decoding, fine for short clips
        count = 0
        try:
            for _ in media.decode(stream):
                count += 1
        except Exception as err:
            raise CorruptVideoError(p, f"decoding failed after {count} frames ({_short(err)})",
                                    _FIX_REDOWNLOAD) from None
    if count == 0:
        if declared > 0:
            raise CorruptVideoError(p, f"the container indexes {declared} frames but none can be shown",
                                    _FIX_REDOWNLOAD)
        raise EmptyVideoError(p, "its video stream holds no frames",
                              "Re-export the video with its frames, or drop it from the split")
    if width < 1 or height < 1:
        raise CorruptVideoError(p, f"its video stream has no valid size ({width}x{height})", _FIX_REDOWNLOAD)
    packets = packets if declared > 0 else count
    return _Inspected(p, size, count, fps, width, height, codec, duration, packets)


def _read_pyav(info: _Inspected, indices: np.ndarray) -> np.ndarray:
    """Decode sequentially from the start, keep the wanted frames, stop after the last one.

    Sequential decoding (no seeking) is what makes the frames identical to decord's,
    whatever the GOP structure.
    """
    import av

    p = info.path
    wanted = set(indices.tolist())
    last = int(indices.max())
    kept: dict[int, np.ndarray] = {}
    i = -1
    try:
        with av.open(str(p)) as media:
            for i, frame in enumerate(media.decode(media.streams.video[0])):
                # the decoder concealed an error in this frame; frames after it may copy the
                # damage too, so any corrupt frame before the last wanted one is fatal
                if frame.is_corrupt:
                    raise CorruptVideoError(p, f"frame {i} is damaged (the decoder had to conceal errors)",
                                            _FIX_REDOWNLOAD)
                if i in wanted:
                    if (frame.height, frame.width) != (info.height, info.width):
                        raise UnsupportedVideoError(
                            p, f"the frame size changes mid-stream ({info.width}x{info.height} -> "
                            f"{frame.width}x{frame.height} at frame {i})", "Re-encode it at one size")
                    kept[i] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
    except VideoError:
        raise
    except Exception as err:
        raise CorruptVideoError(p, f"decoding failed at frame {i + 1} of {info.num_frames} ({_short(err)})",
                                _FIX_REDOWNLOAD) from None
    if len(kept) < len(wanted):
        raise CorruptVideoError(p, f"only {i + 1} of its {info.num_frames} frames decode (frame {last} was wanted)",
                                _FIX_REDOWNLOAD)
    return np.stack([kept[j] for j in indices.tolist()])


def _decord_open(info: _Inspected) -> decord.VideoReader:
    """A decord VideoReader for a file PyAV has validated; its failures become CorruptVideoError."""
    import decord

    try:
        # fault_tol > 0: decord "recovers" undecodable frames by repeating the previous
        # one; with a tiny threshold any such repeat raises DECORDLimitReachedError instead
        return decord.VideoReader(str(info.path), ctx=decord.cpu(0), fault_tol=1e-9)
    except Exception as err:  # DECORDError, RuntimeError, and a bare AssertionError for 0 frames
        raise CorruptVideoError(info.path, f"decord cannot open it ({_short(err)})", _FIX_REDOWNLOAD) from None


def _decord_agrees(vr: decord.VideoReader, info: _Inspected) -> bool:
    """Whether decord's frame table is PyAV's: same frames, none discarded by an edit list.

    decord indexes every packet, including those an edit list discards (clips cut with
    `ffmpeg -c copy`): its sequential reads then skip them but its seeks do not, so index
    i means different frames depending on which other indices are asked for. Files like
    that (and any other count mismatch) are read with PyAV, whose frames are by
    construction the ones decord returns on files it handles correctly.
    """
    return len(vr) == info.packets == info.num_frames


def _read_decord(info: _Inspected, n: int) -> np.ndarray:
    import decord

    indices = frame_indices(info.num_frames, n)
    unique, inverse = np.unique(indices, return_inverse=True)  # decode each frame once
    vr = _decord_open(info)
    batch = None
    if _decord_agrees(vr, info):
        try:
            with decord.bridge._BridgeScope("native"):  # another caller may have set the torch bridge
                batch = vr.get_batch(unique.tolist()).asnumpy()
        except Exception as err:
            if "DECORDArrayCopyFromTo" not in str(err):  # the width bug below, anything else is damage
                raise CorruptVideoError(info.path, f"decord failed to decode it ({_short(err)})",
                                        _FIX_REDOWNLOAD) from None
    if batch is None or batch.shape != (len(unique), info.height, info.width, 3):
        # decord 0.6.0 bug: for some widths (2..24, 48, 72, ...) the RGB rows are padded
        # and it returns [H, W, 4]-shaped frames or fails to copy the batch. PyAV reads
        # these files (and those decord disagrees on) with the same frames.
        batch = _read_pyav(info, unique)
    return batch[inverse.reshape(-1)]
