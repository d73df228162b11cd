"""Camera frame sources: decode a URL into YUV420 frames at the camera's analysis rate.

A source yields `Frame`s and exposes its `state`; it never lets an error escape the iterator. The PyAV
implementation opens anything PyAV opens (file, rtsp, http, udp, tcp), decodes on NVDEC when it can and on
the CPU otherwise, keeps one frame per analysis slot by timestamp, reconnects with capped exponential
backoff and full jitter, and keeps the last seconds of encoded packets in a `PacketRing` for evidence clips
(`write_clip`). `MemorySource` is the in-memory implementation for tests.
"""

from __future__ import annotations

import io
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import av
import numpy as np

SourceStatus = Literal["connecting", "live", "retrying", "failed", "ended"]

FILE_SCHEMES = frozenset({"", "file"})
"""URL schemes read as files: they end at EOF, pace only when asked, and get `ts = start_time + pts`."""

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt"})
"""URL schemes read as live streams: EOF means the camera dropped, so the source reconnects."""

_SLOT_EPSILON = 1e-6
_REANCHOR_S = 5.0


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame, as YUV420 planes.

    Attributes:
        camera_id: The camera that produced it.
        frame_index: Index of the frame in the source stream (every decoded frame counts, kept or not).
        ts: UTC time of the frame: `start_time + pts` for files, wall clock at receipt (advanced by pts)
            for live streams.
        yuv: (H*3//2, W) uint8: the Y plane (H, W), then the U and V planes (H/2, W/2) each, flattened and
            wrapped at width W; the layout of `av.VideoFrame.to_ndarray()` for yuv420p.
        full_range: True for JPEG-range YUV (0..255, e.g. yuvj420p), False for video range (16..235).
    """

    camera_id: str
    frame_index: int
    ts: datetime
    yuv: np.ndarray
    full_range: bool = False

    def __post_init__(self) -> None:
        if self.yuv.dtype != np.uint8 or self.yuv.ndim != 2 or self.yuv.shape[0] % 3:
            raise ValueError(f"yuv must be uint8 of shape (H*3//2, W), got {self.yuv.dtype} {self.yuv.shape}")
        if self.ts.tzinfo is None:
            raise ValueError("ts must be timezone-aware (UTC)")

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return self.yuv.shape[1]

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return self.yuv.shape[0] * 2 // 3

    @property
    def y(self) -> np.ndarray:
        """(H, W) uint8 luma plane (a view)."""
        return self.yuv[: self.height]

    @classmethod
    def blank(cls, camera_id: str, frame_index: int, *, ts: datetime, width: int, height: int,
              luma: int = 16) -> Frame:
        """Returns a uniform frame (grey level `luma`, neutral chroma), handy for tests."""
        yuv = np.full((height * 3 // 2, width), 128, np.uint8)
        yuv[:height] = luma
        return cls(camera_id, frame_index, ts, yuv)


@dataclass(frozen=True)
class SourceState:
    """What a camera's source is doing, for operators and the actor that owns it.

    Attributes:
        status: connecting, live (frames flowing), retrying (waiting to reconnect), failed (gave up; see
            `reason`) or ended (a file reached its end).
        reason: One line saying why the source is retrying or failed; empty otherwise.
        attempts: Consecutive failed connection attempts (reset by the first frame of a connection).
        connections: Connections that delivered at least one frame.
        last_frame_ts: `ts` of the last frame kept.
        frames_decoded: Frames decoded, over all connections.
        frames_kept: Frames yielded (one per analysis slot).
        frames_dropped: Frames decoded but not kept: above the analysis rate or behind the last slot.
        decode_errors: Packets the decoder rejected (skipped; the stream goes on).
        hwaccel: "cuda" while NVDEC decodes, "cpu" otherwise.
        hwaccel_reason: Why hardware decoding is not used, when it was asked for.
        retry_in_s: The backoff delay chosen for the coming reconnection, while retrying.
    """

    status: SourceStatus = "connecting"
    reason: str = ""
    attempts: int = 0
    connections: int = 0
    last_frame_ts: datetime | None = None
    frames_decoded: int = 0
    frames_kept: int = 0
    frames_dropped: int = 0
    decode_errors: int = 0
    hwaccel: str = "cpu"
    hwaccel_reason: str = ""
    retry_in_s: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter (AWS style).

    Attributes:
        initial_s: Ceiling of the first delay.
        max_s: Cap on every delay's ceiling.
        max_attempts: Consecutive failed attempts before the source gives up (`failed`); None retries forever.
    """

    initial_s: float = 1.0
    max_s: float = 30.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s:
            raise ValueError("need 0 <= initial_s <= max_s")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 or None")

    def ceiling_s(self, attempt: int) -> float:
        """The upper bound of the delay after failed attempt number `attempt` (1-based)."""
        return min(self.max_s, self.initial_s * 2.0 ** min(attempt - 1, 62))

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """A delay drawn uniformly from [0, ceiling_s(attempt)]."""
        return rng.uniform(0.0, self.ceiling_s(attempt))

    def exhausted(self, attempts: int) -> bool:
        """Whether `attempts` consecutive failures use up the budget."""
        return self.max_attempts is not None and attempts >= self.max_attempts


@runtime_checkable
class FrameSource(Protocol):
    """Yields one camera's frames; errors end up in `state`, never as exceptions from the iterator."""

    camera_id: str

    @property
    def state(self) -> SourceState: ...

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class AnalysisSampler:
    """Keeps the first frame of each analysis slot (1 / analysis_fps seconds), judged by timestamp.

    Frames whose slot is not after the last kept slot are refused, so a stream at any rate, constant or
    variable, comes out at no more than `analysis_fps`, aligned on time rather than on frame counts.
    """

    def __init__(self, analysis_fps: float | None) -> None:
        if analysis_fps is not None and analysis_fps <= 0:
            raise ValueError(f"analysis_fps must be positive or None, got {analysis_fps}")
        self.analysis_fps = analysis_fps
        self._last_slot: int | None = None

    def keep(self, time_s: float) -> bool:
        """Whether to keep a frame at `time_s` seconds from the stream origin."""
        if self.analysis_fps is None:
            return True
        slot = math.floor(time_s * self.analysis_fps + _SLOT_EPSILON)
        if self._last_slot is not None and slot <= self._last_slot:
            return False
        self._last_slot = slot
        return True


@dataclass(frozen=True)
class EncodedPacket:
    """One compressed video packet as it came from the demuxer.

    Attributes:
        data: The packet's bytes.
        pts: Presentation time in `time_base` units (None if the stream has none).
        dts: Decoding time in `time_base` units (None if the stream has none).
        is_keyframe: Whether decoding can start here.
        time_base: Seconds per tick.
        ts: UTC time of the packet's presentation.
    """

    data: bytes
    pts: int | None
    dts: int | None
    is_keyframe: bool
    time_base: Fraction
    ts: datetime

    @property
    def decode_ts(self) -> datetime:
        """UTC time of the packet's decoding (`ts` moved by dts - pts)."""
        if self.pts is None or self.dts is None:
            return self.ts
        return self.ts + timedelta(seconds=float((self.dts - self.pts) * self.time_base))


class PacketRing:
    """The last `max_duration_s` seconds of one connection's encoded packets, with the codec parameters.

    Bounded by time and by bytes. `codec_header` is a one-keyframe Matroska file carrying the stream's codec
    parameters (extradata included); `write_clip` uses it to remux packets without re-encoding. The ring is
    reset at every new connection. Thread-safe: the source pushes while an actor writes clips.
    """

    def __init__(self, max_duration_s: float = 30.0, *, max_bytes: int = 64 * 2**20) -> None:
        if max_duration_s <= 0 or max_bytes <= 0:
            raise ValueError("max_duration_s and max_bytes must be positive")
        self.max_duration_s = max_duration_s
        self.max_bytes = max_bytes
        self._packets: deque[EncodedPacket] = deque()
        self._nbytes = 0
        self._header: bytes | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._lock = threading.Lock()

    def reset(self, stream: av.video.stream.VideoStream | None = None) -> None:
        """Drops every packet and the codec header; `stream` (open input) provides the next header."""
        with self._lock:
            self._packets.clear()
            self._nbytes = 0
            self._header = None
            self._stream = stream

    def push(self, packet: EncodedPacket) -> None:
        """Appends a packet and evicts the oldest beyond the time and byte bounds."""
        with self._lock:
            if self._header is None and packet.is_keyframe and self._stream is not None:
                self._header = _codec_header(self._stream, packet)
            self._packets.append(packet)
            self._nbytes += len(packet.data)
            newest = packet.ts
            while len(self._packets) > 1 and (
                (newest - self._packets[0].ts).total_seconds() > self.max_duration_s or self._nbytes > self.max_bytes
            ):
                self._nbytes -= len(self._packets.popleft().data)

    def snapshot(self) -> tuple[bytes | None, list[EncodedPacket]]:
        """Returns (codec_header, packets in decode order) at this instant."""
        with self._lock:
            return self._header, list(self._packets)

    @property
    def codec_header(self) -> bytes | None:
        """A Matroska file holding the stream's codec parameters, once a keyframe has been seen."""
        return self._header

    @property
    def nbytes(self) -> int:
        """Bytes of packet data held."""
        return self._nbytes

    @property
    def duration_s(self) -> float:
        """Seconds between the oldest and the newest packet held."""
        with self._lock:
            if len(self._packets) < 2:
                return 0.0
            return (self._packets[-1].ts - self._packets[0].ts).total_seconds()

    def __len__(self) -> int:
        return len(self._packets)


def _codec_header(stream: av.video.stream.VideoStream, keyframe: EncodedPacket) -> bytes | None:
    """Serialises `stream`'s codec parameters as a Matroska file holding one keyframe; None if impossible."""
    try:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="matroska") as container:
            out = container.add_stream_from_template(stream)
            container.start_encoding()
            container.mux(_to_av_packet(keyframe, out, pts=0, dts=0))
        return buffer.getvalue()
    except (av.FFmpegError, ValueError):
        return None


def _to_av_packet(packet: EncodedPacket, stream: av.stream.Stream, *, pts: int | None, dts: int | None) -> av.Packet:
    out = av.Packet(packet.data)
    out.pts, out.dts = pts, dts
    out.is_keyframe = packet.is_keyframe
    out.time_base = packet.time_base
    out.stream = stream
    return out


@dataclass(frozen=True)
class Clip:
    """An evidence clip written by `write_clip`.

    Attributes:
        path: The MP4 file.
        start_ts: UTC time of its first (key) frame.
        end_ts: UTC time of its last packet.
        packets: Packets written.
    """

    path: Path
    start_ts: datetime
    end_ts: datetime
    packets: int


def write_clip(ring: PacketRing, path: str | os.PathLike, *, start_ts: datetime, end_ts: datetime) -> Clip:
    """Remuxes the ring's packets from `start_ts` to `end_ts` into an MP4 file, without re-encoding.

    The clip starts on the last keyframe at or before `start_ts` (or the first one the ring still holds) and
    takes every packet decoded up to `end_ts`. The file appears atomically (written aside, then renamed).

    Raises:
        ValueError: if the ring holds no codec header or no keyframe before `end_ts`.
    """
    header, packets = ring.snapshot()
    if header is None or not packets:
        raise ValueError("the packet ring holds no keyframe yet")
    keyframes = [i for i, p in enumerate(packets) if p.is_keyframe and p.ts <= end_ts]
    if not keyframes:
        raise ValueError(f"no keyframe at or before {end_ts.isoformat()} in the packet ring")
    before = [i for i in keyframes if packets[i].ts <= start_ts]
    first = before[-1] if before else keyframes[0]
    chosen = [p for p in packets[first:] if p.decode_ts <= end_ts]
    origin = min((p.dts if p.dts is not None else p.pts or 0) for p in chosen)
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    with av.open(io.BytesIO(header)) as template:
        with av.open(str(partial), "w", format="mp4") as container:
            stream = container.add_stream_from_template(template.streams.video[0])
            stream.time_base = chosen[0].time_base
            for packet in chosen:
                pts = None if packet.pts is None else packet.pts - origin
                dts = None if packet.dts is None else packet.dts - origin
                container.mux(_to_av_packet(packet, stream, pts=pts, dts=dts))
    os.replace(partial, path)
    return Clip(path=path, start_ts=chosen[0].ts, end_ts=max(p.ts for p in chosen), packets=len(chosen))


def yuv420_planes(frame: av.VideoFrame) -> np.ndarray:
    """Returns a decoded frame as (H*3//2, W) uint8 YUV420 planes, converting only between YUV layouts.

    yuv420p and yuvj420p come out as `to_ndarray()` gives them; nv12 (what NVDEC hands back) is
    de-interleaved in numpy; any other format (4:2:2, 10-bit, odd sizes) goes through swscale to yuv420p.
    """
    name = frame.format.name
    even = frame.width % 2 == 0 and frame.height % 2 == 0
    if name in ("yuv420p", "yuvj420p") and even:
        return frame.to_ndarray()
    if name == "nv12" and even:
        flat = frame.to_ndarray().reshape(-1)
        area = frame.width * frame.height
        uv = flat[area:]
        return np.concatenate([flat[:area], uv[0::2], uv[1::2]]).reshape(-1, frame.width)
    width, height = frame.width & ~1, frame.height & ~1
    return frame.reformat(format="yuv420p", width=width, height=height).to_ndarray()


def redact_url(url: str) -> str:
    """Returns `url` without credentials or query string, fit for logs and API responses."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    userinfo = "***@" if parts.username or parts.password else ""
    query = "?***" if parts.query else ""
    return f"{parts.scheme}://{userinfo}{host}{parts.path}{query}"


def _one_line(error: BaseException, *, url: str, timeout_s: float) -> str:
    if isinstance(error, av.ExitError):
        return f"TimeoutError: no data within {timeout_s:g} s from {redact_url(url)}"
    text = " ".join(str(error).split()).replace(url, redact_url(url)) or "no details"
    return f"{type(error).__name__}: {text}"[:300]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Counters:
    frames_decoded: int = 0
    frames_kept: int = 0
    frames_dropped: int = 0
    decode_errors: int = 0


@dataclass
class _Timeline:
    """Maps one connection's pts to UTC `ts` and to seconds on the sampler's axis."""

    time_base: Fraction
    anchor_pts: int | None = None
    anchor_ts: datetime | None = None


class PyAVSource:
    """A camera or a recorded clip decoded by PyAV.

    Iterate it to get `Frame`s at `analysis_fps`; read `state` from any thread; `close()` stops it. Files
    (`file://` or a path) end with status `ended`; live URLs reconnect after EOF or errors. Unsupported
    URL schemes fail at once; open or read errors retry under `retry` and end in `failed` with a one-line
    reason when the budget is spent. Nothing raises out of the iterator.

    Args:
        camera_id: The camera's id (copied into every frame).
        url: A path or URL PyAV opens.
        analysis_fps: Frames per second to keep (one per slot, by timestamp); None keeps every frame.
        start_time: UTC time of pts 0 for files; None takes the wall clock when the source first opens.
        realtime: Pace a file at real time, like a camera (live streams pace themselves).
        live: Force live (reconnecting) or file behaviour; None decides by URL scheme.
        hwaccel: "auto" (NVDEC when FFmpeg has CUDA and a GPU is visible), "cuda" (try it), or "none".
        threads: Decoder threads per camera; 0 lets FFmpeg choose. Keep it small with many cameras a node.
        retry: Reconnection policy.
        ring_s: Seconds of encoded packets kept for evidence clips.
        open_timeout_s: Limit on opening the URL.
        read_timeout_s: Limit on waiting for data once open.
        clock: Monotonic seconds (injectable for tests).
        sleep: Sleeps for seconds (injectable for tests); the default wakes up on `close()`.
        now: The UTC wall clock (injectable for tests).
        rng: Random numbers for the backoff jitter.
    """

    def __init__(
        self,
        camera_id: str,
        url: str,
        *,
        analysis_fps: float | None,
        start_time: datetime | None = None,
        realtime: bool = False,
        live: bool | None = None,
        hwaccel: Literal["auto", "cuda", "none"] = "auto",
        threads: int = 2,
        retry: RetryPolicy | None = None,
        ring_s: float = 30.0,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        now: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> None:
        if start_time is not None and start_time.tzinfo is None:
            raise ValueError("start_time must be timezone-aware (UTC)")
        self.camera_id = camera_id
        self.url = url
        self.realtime = realtime
        self.threads = threads
        self.retry = retry or RetryPolicy()
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.ring = PacketRing(ring_s)
        self._sampler = AnalysisSampler(analysis_fps)
        self._start_time = start_time
        self._clock = clock
        self._closing = threading.Event()
        self._sleep = sleep or self._closing.wait
        self._now = now
        self._rng = rng or random.Random()
        self._counters = _Counters()
        self._state = SourceState()
        self._scheme = urlsplit(url).scheme.lower() if "://" in url else ""
        self._live = self._scheme in LIVE_SCHEMES if live is None else live
        self._use_hwaccel, hw_reason = _hwaccel_available(hwaccel)
        self._state = replace(self._state, hwaccel_reason=hw_reason)
        self._origin_ts: datetime | None = None
        self._next_index = 0
        self._resume_index = 0

    @property
    def state(self) -> SourceState:
        """A snapshot of the source's status and counters."""
        return replace(self._state, **vars(self._counters))

    @property
    def live(self) -> bool:
        """Whether the source reconnects at EOF (a camera) rather than ending (a file)."""
        return self._live

    def close(self) -> None:
        """Stops the iteration at its next packet or backoff wait; safe from any thread."""
        self._closing.set()

    def __iter__(self) -> Iterator[Frame]:
        if self._scheme not in FILE_SCHEMES | LIVE_SCHEMES:
            self._set(status="failed", reason=f"unsupported URL scheme {self._scheme!r}")
            return
        while not self._closing.is_set():
            self._set(status="connecting", retry_in_s=None)
            try:
                container = self._open()
            except Exception as error:  # noqa: BLE001 - any open failure is the camera's state, not the caller's
                if self._retry_or_fail(self._reason(error)):
                    continue
                return
            try:
                yield from self._decode(container)
                failure = None if not self._live else "stream ended"
            except Exception as error:  # noqa: BLE001 - a broken stream must not kill the caller
                failure = self._reason(error)
            finally:
                _close_quietly(container)
            if self._closing.is_set():
                break
            if failure is None:
                self._set(status="ended", reason="")
                return
            if not self._retry_or_fail(failure):
                return
        if self._state.status not in ("failed", "ended"):
            self._set(status="ended", reason="closed")

    def _reason(self, error: BaseException) -> str:
        return _one_line(error, url=self.url, timeout_s=max(self.open_timeout_s, self.read_timeout_s))

    def _set(self, **changes: object) -> None:
        self._state = replace(self._state, **changes)

    def _retry_or_fail(self, reason: str) -> bool:
        attempts = self._state.attempts + 1
        if self.retry.exhausted(attempts):
            self._set(status="failed", reason=reason, attempts=attempts, retry_in_s=None)
            return False
        delay_s = self.retry.delay_s(attempts, self._rng)
        self._set(status="retrying", reason=reason, attempts=attempts, retry_in_s=delay_s)
        self._sleep(delay_s)
        return not self._closing.is_set()

    def _open(self) -> av.container.InputContainer:
        options = {"rtsp_transport": "tcp"} if self._scheme.startswith("rtsp") else {}
        kwargs = {"options": options, "timeout": (self.open_timeout_s, self.read_timeout_s)}
        if self._use_hwaccel:
            from av.codec.hwaccel import HWAccel

            try:
                container = av.open(self.url, hwaccel=HWAccel(device_type="cuda", allow_software_fallback=True),
                                    **kwargs)
                self._set(hwaccel="cuda")
                return container
            except Exception as error:  # noqa: BLE001 - fall back to the CPU, then judge the URL
                container = av.open(self.url, **kwargs)
                self._use_hwaccel = False
                self._set(hwaccel="cpu", hwaccel_reason=f"NVDEC unavailable: {self._reason(error)}")
                return container
        self._set(hwaccel="cpu")
        return av.open(self.url, **kwargs)

    def _decode(self, container: av.container.InputContainer) -> Iterator[Frame]:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = self.threads
        timeline = _Timeline(time_base=stream.time_base or Fraction(1, 90000))
        self.ring.reset(stream)
        stream_index = 0
        pace: tuple[float, float] | None = None
        connected = False
        for packet in container.demux(stream):
            if self._closing.is_set():
                return
            if packet.size:
                ring_pts = packet.pts if packet.pts is not None else packet.dts
                self.ring.push(EncodedPacket(
                    data=bytes(packet), pts=packet.pts, dts=packet.dts, is_keyframe=packet.is_keyframe,
                    time_base=timeline.time_base, ts=self._ts_of(timeline, ring_pts),
                ))
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                self._counters.decode_errors += 1
                continue
            for av_frame in decoded:
                index = stream_index
                stream_index += 1
                if index < self._resume_index:
                    continue
                self._counters.frames_decoded += 1
                pts = av_frame.pts if av_frame.pts is not None else av_frame.dts
                ts = self._ts_of(timeline, pts)
                if not connected:
                    connected = True
                    self._set(status="live", reason="", attempts=0, retry_in_s=None,
                              connections=self._state.connections + 1)
                if self._origin_ts is None:
                    self._origin_ts = self._start_time if not self._live and self._start_time else ts
                frame_index = self._next_index
                self._next_index += 1
                if not self._live:
                    self._resume_index = stream_index
                if not self._sampler.keep((ts - self._origin_ts).total_seconds()):
                    self._counters.frames_dropped += 1
                    continue
                if self.realtime and not self._live:
                    pace = self._pace(pace, (ts - self._origin_ts).total_seconds())
                    if self._closing.is_set():
                        return
                frame = Frame(self.camera_id, frame_index, ts, yuv420_planes(av_frame),
                              full_range=av_frame.format.name.startswith("yuvj") or av_frame.color_range == 2)
                self._counters.frames_kept += 1
                self._set(last_frame_ts=ts)
                yield frame

    def _ts_of(self, timeline: _Timeline, pts: int | None) -> datetime:
        if not self._live:
            if self._start_time is None:
                self._start_time = self._now()
            return self._start_time + timedelta(seconds=float((pts or 0) * timeline.time_base))
        now = self._now()
        if pts is None:
            return now
        if timeline.anchor_pts is not None:
            ts = timeline.anchor_ts + timedelta(seconds=float((pts - timeline.anchor_pts) * timeline.time_base))
            if abs((ts - now).total_seconds()) <= _REANCHOR_S:
                return ts
        timeline.anchor_pts, timeline.anchor_ts = pts, now
        return now

    def _pace(self, pace: tuple[float, float] | None, time_s: float) -> tuple[float, float]:
        if pace is None:
            return self._clock(), time_s
        clock_origin, time_origin = pace
        delay_s = clock_origin + (time_s - time_origin) - self._clock()
        if delay_s > 0:
            self._sleep(delay_s)
        return pace


def _close_quietly(container: av.container.InputContainer) -> None:
    try:
        container.close()
    except Exception:  # noqa: BLE001, S110 - closing a broken stream may fail; nothing to recover
        pass


def _hwaccel_available(hwaccel: str) -> tuple[bool, str]:
    if hwaccel == "none":
        return False, ""
    if hwaccel not in ("auto", "cuda"):
        raise ValueError(f"hwaccel must be 'auto', 'cuda' or 'none', got {hwaccel!r}")
    from av.codec.hwaccel import hwdevices_available

    if "cuda" not in hwdevices_available():
        return False, "FFmpeg was built without CUDA"
    if hwaccel == "auto" and not os.path.exists("/dev/nvidiactl"):
        return False, "no NVIDIA GPU visible"
    return True, ""


class MemorySource:
    """A `FrameSource` over frames held in memory, for tests and replays of decoded frames.

    Args:
        camera_id: The camera's id; frames must carry it.
        frames: The frames, in time order.
        analysis_fps: Keep one frame per slot by `ts`, as `PyAVSource` does; None keeps all.
        fail_reason: If given, the source ends `failed` with this reason after the frames, as a camera that
            dies would; otherwise it ends `ended`.
    """

    def __init__(self, camera_id: str, frames: Iterable[Frame], *, analysis_fps: float | None = None,
                 fail_reason: str | None = None) -> None:
        self.camera_id = camera_id
        self._frames = frames
        self._sampler = AnalysisSampler(analysis_fps)
        self._fail_reason = fail_reason
        self._closing = threading.Event()
        self._state = SourceState()
        self._origin_ts: datetime | None = None

    @property
    def state(self) -> SourceState:
        """A snapshot of the source's status and counters."""
        return self._state

    def close(self) -> None:
        """Stops the iteration before its next frame."""
        self._closing.set()

    def __iter__(self) -> Iterator[Frame]:
        state = self._state
        for frame in self._frames:
            if self._closing.is_set():
                break
            if frame.camera_id != self.camera_id:
                raise ValueError(f"frame of camera {frame.camera_id!r} in the source of {self.camera_id!r}")
            self._origin_ts = self._origin_ts or frame.ts
            decoded = state.frames_decoded + 1
            if not self._sampler.keep((frame.ts - self._origin_ts).total_seconds()):
                state = self._state = replace(state, status="live", frames_decoded=decoded,
                                              frames_dropped=state.frames_dropped + 1)
                continue
            state = self._state = replace(state, status="live", connections=1, frames_decoded=decoded,
                                          frames_kept=state.frames_kept + 1, last_frame_ts=frame.ts)
            yield frame
        if self._fail_reason is not None and not self._closing.is_set():
            self._state = replace(self._state, status="failed", reason=self._fail_reason)
        else:
            self._state = replace(self._state, status="ended", reason="" if not self._closing.is_set() else "closed")

