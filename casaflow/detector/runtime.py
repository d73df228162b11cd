"""The one inference path: YUV420 stacks in, per-frame `Detections` in source pixels out.

Both the Serve deployment and `casaflow detect` build a `DetectorRuntime`; evaluation uses it too, so the
numbers in the model card come from the serving code.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from casaflow.detections import Detections
from casaflow.detector.decode import BatchBoxes, decode_centernet, scale_to_source, split_detections
from casaflow.detector.model import CenterNet, ModelConfig
from casaflow.detector.preprocess import normalize_rgb, yuv420_frame_hw, yuv420_to_rgb

WEIGHTS_FORMAT = "casaflow.centernet"
DEFAULT_WEIGHTS_PATH = Path(__file__).parent / "weights" / "centernet.pt"
CPU_MAX_INPUT_PX = 512 * 288
"""Default `DetectorOptions.cpu_max_input_px`: at the committed weights' 608x352 a 2-core machine analysed 8
live cameras at 3.1 frames/s each (41 % dropped), at 512x288 at 4.1 (15-18 %), for bicycle AP50 0.784 instead
of 0.885."""


class BatchDetector(Protocol):
    """What the runtime drives: a module detecting in a batch of RGB images, returning padded boxes."""

    input_size_wh: tuple[int, int] | None

    def detect_rgb(self, rgb: torch.Tensor, *, min_confidence: float, top_k: int) -> BatchBoxes:
        """(B, 3, h, w) RGB 0..255 -> padded boxes in input pixels."""
        ...


class CenterNetDetector(nn.Module):
    """CenterNet + normalisation + batched peak decoding, as a `BatchDetector`."""

    def __init__(self, model: CenterNet, *, input_size_wh: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.model = model.eval()
        self.input_size_wh = tuple(input_size_wh or model.input_size_wh)
        if self.input_size_wh[0] % 32 or self.input_size_wh[1] % 32:
            raise ValueError(f"CenterNet input size must be multiples of 32, got {self.input_size_wh}")
        self.channels_last = False

    def detect_rgb(self, rgb: torch.Tensor, *, min_confidence: float, top_k: int) -> BatchBoxes:
        images = normalize_rgb(rgb)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        output = self.model(images)
        return decode_centernet(*output, stride=self.model.stride, top_k=top_k, min_confidence=min_confidence)


class DetectorOptions(BaseModel):
    """How to build a detector runtime (Serve deployment arguments, `casaflow detect` flags)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: Literal["centernet", "coco"] = Field("centernet", description="casaflow CenterNet, or a torchvision COCO detector")
    weights_path: str | None = Field(None, description="weights file; None: the packaged CenterNet weights")
    coco_model: str = Field("fasterrcnn_mobilenet_v3_large_fpn", description="torchvision builder name when model='coco'")
    input_size_wh: tuple[int, int] | None = Field(None, description="network input (w, h) px; None: the trained size (CenterNet; see cpu_max_input_px) or the source size (COCO)")
    cpu_max_input_px: int | None = Field(CPU_MAX_INPUT_PX, ge=32 * 32, description="on a CPU, CenterNet weights trained at a larger input run scaled to about this many pixels unless input_size_wh is given; None: at the trained size (evaluation)")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto picks CUDA when present")
    fp16: bool | None = Field(None, description="fp16 autocast; None: on for CUDA, off for CPU")
    pad_batches: bool | None = Field(None, description="pad batches to `batch_bucket` sizes; None: on for CUDA, off for CPU")
    cuda_graphs: bool | None = Field(None, description="replay each padded batch size as a CUDA graph; None: on for CenterNet on CUDA")
    min_confidence: float = Field(0.3, ge=0.0, le=1.0, description="detections scoring below are dropped")
    top_k: int = Field(100, ge=1, le=1000, description="most detections per frame")
    num_threads: int | None = Field(None, ge=1, le=256, description="torch CPU threads; None leaves torch's default")


class DetectorRuntime:
    """Runs a `BatchDetector` on stacks of YUV420 frames on one device.

    Frames are uploaded as uint8 planes; conversion, resize, normalisation, the network and decoding run
    on the device for the whole batch; results come back to host memory in one transfer.

    With `cuda_graphs`, that device work is captured once per thread and padded batch size and then
    replayed: one launch instead of a few hundred, so a batch holds the GIL (which the Serve replica's
    event loop and its other batch thread need) for a fraction of the Python it took (one replica on an
    H100: 2,096-2,480 frames/s with graphs, 1,392-1,475 without).
    """

    def __init__(
        self,
        detector: nn.Module,
        *,
        device: str = "auto",
        fp16: bool | None = None,
        min_confidence: float = 0.3,
        top_k: int = 100,
        pad_batches: bool | None = None,
        cuda_graphs: bool | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.fp16 = self.device.type == "cuda" if fp16 is None else bool(fp16)
        self.pad_batches = self.device.type == "cuda" if pad_batches is None else bool(pad_batches)
        if self.fp16 and self.device.type != "cuda":
            raise ValueError("fp16 inference needs a CUDA device")
        graphable = self.device.type == "cuda" and self.pad_batches and isinstance(detector, CenterNetDetector)
        self.cuda_graphs = graphable if cuda_graphs is None else bool(cuda_graphs)
        if self.cuda_graphs and not graphable:
            raise ValueError("CUDA graphs need a CenterNet on a CUDA device with padded batches")
        self.min_confidence = float(min_confidence)
        self.top_k = int(top_k)
        self.detector = detector.to(self.device).eval()
        if isinstance(detector, CenterNetDetector):
            self.detector.model.to(memory_format=torch.channels_last)
            self.detector.channels_last = True
        self._failure: str | None = None
        self._local = threading.local()
        self._capture_lock = threading.Lock()

    @property
    def input_size_wh(self) -> tuple[int, int] | None:
        return self.detector.input_size_wh

    @torch.inference_mode()
    def detect(self, frames: np.ndarray | torch.Tensor) -> list[Detections]:
        """Detects objects in a stack of same-sized frames.

        Args:
            frames: (B, H*3//2, W) uint8 yuv420p frames.

        Returns:
            B `Detections`, boxes in source pixels, sorted by descending confidence.
        """
        return self._detect_parts([frames])

    def detect_stacks(self, stacks: Sequence[np.ndarray]) -> list[list[Detections]]:
        """Detects in several stacks (one per request), batching together the stacks of one frame size.

        Safe to call from several threads at once: on CUDA each thread has its own stream and pinned
        staging buffer, so one batch's upload overlaps another's network.

        Args:
            stacks: each (B_i, H_i*3//2, W_i) uint8; sizes may differ between stacks.

        Returns:
            One list of B_i `Detections` per stack, in input order.
        """
        groups: dict[tuple[int, ...], list[int]] = {}
        for position, stack in enumerate(stacks):
            yuv420_frame_hw(tuple(stack.shape))
            groups.setdefault(tuple(stack.shape[1:]), []).append(position)
        results: list[list[Detections]] = [[] for _ in stacks]
        for positions in groups.values():
            members = [stacks[p] for p in positions]
            detections = self._detect_parts(members)
            start = 0
            for position, member in zip(positions, members):
                results[position] = detections[start : start + member.shape[0]]
                start += member.shape[0]
        return results

    @torch.inference_mode()
    def _detect_parts(self, parts: Sequence[np.ndarray | torch.Tensor]) -> list[Detections]:
        """One batch from stacks of the same frame size, without concatenating them on the host."""
        yuv420_frame_hw(tuple(parts[0].shape))
        count = sum(int(part.shape[0]) for part in parts)
        if count == 0:
            return []
        try:
            with self._stream():
                staged = self._stage(parts, count)
                if self.cuda_graphs:
                    boxes = self._replay(staged)
                else:
                    boxes = self._device_boxes(staged.to(self.device, non_blocking=True))
                return split_detections(BatchBoxes(*(field[:count] for field in boxes)))
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as error:
            if self.device.type == "cuda" and "CUDA" in str(error):
                self._failure = str(error).splitlines()[0]
            raise

    def _device_boxes(self, frames: torch.Tensor) -> BatchBoxes:
        """Everything between the uploaded frames and the padded boxes in source pixels: fixed shapes,
        no host synchronisation (what a CUDA graph captures)."""
        height, width = yuv420_frame_hw(tuple(frames.shape))
        input_wh = self.input_size_wh or (width, height)
        rgb = yuv420_to_rgb(frames, size_hw=(input_wh[1], input_wh[0]), dtype=torch.float16 if self.fp16 else torch.float32)
        with self._autocast():
            boxes = self.detector.detect_rgb(rgb, min_confidence=self.min_confidence, top_k=self.top_k)
        return scale_to_source(boxes, input_size_wh=input_wh, source_size_wh=(width, height))

    def _replay(self, staged: torch.Tensor) -> BatchBoxes:
        """`_device_boxes` as this thread's CUDA graph for the batch's shape, captured on first use; the
        staged frames are uploaded straight into the graph's input.

        The returned tensors are the graph's static outputs: read them before this thread's next batch.
        Captures are serialised and record only this thread's work (`thread_local`), so another thread's
        batches run on meanwhile. A thread's graphs share one memory pool: they never run at once.
        """
        graphs = self._local.__dict__.setdefault("graphs", {})
        graphed = graphs.get(tuple(staged.shape))
        if graphed is None:
            static_frames = staged.to(self.device)
            for _ in range(2):  # outside the capture: cuDNN plans, the allocator's first blocks
                self._device_boxes(static_frames)
            if getattr(self._local, "pool", None) is None:
                self._local.pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with self._capture_lock, torch.cuda.graph(
                graph, pool=self._local.pool, stream=torch.cuda.current_stream(self.device), capture_error_mode="thread_local"
            ):
                static_boxes = self._device_boxes(static_frames)
            graphed = graphs[tuple(staged.shape)] = _GraphedBatch(graph, static_frames, static_boxes)
        graphed.frames.copy_(staged, non_blocking=True)
        graphed.graph.replay()
        return graphed.boxes

    def _stage(self, parts: Sequence[np.ndarray | torch.Tensor], count: int) -> torch.Tensor:
        """The frames as one uint8 host tensor, padded to `batch_bucket(count)` when padding.

        On CUDA the parts are copied once into this thread's pinned buffer, from which they go to the
        device asynchronously; the padding rows keep whatever the buffer held (their detections are dropped).
        """
        tensors = [_as_uint8_tensor(part) for part in parts]
        size = batch_bucket(count) if self.pad_batches else count
        if self.device.type != "cuda":
            batch = tensors[0] if len(tensors) == 1 else torch.cat(tensors)
            if size > count:
                batch = torch.cat((batch, batch.new_zeros((size - count, *batch.shape[1:]))))
            return batch
        frame_shape = tuple(tensors[0].shape[1:])
        staging = getattr(self._local, "staging", None)
        if staging is None or staging.shape[1:] != frame_shape or staging.shape[0] < size:
            rows = max(size, 2 * staging.shape[0]) if staging is not None and staging.shape[1:] == frame_shape else size
            staging = torch.empty((rows, *frame_shape), dtype=torch.uint8, pin_memory=True)
            self._local.staging = staging
        start = 0
        for tensor in tensors:
            staging[start : start + tensor.shape[0]].copy_(tensor)
            start += tensor.shape[0]
        return staging[:size]

    def _stream(self) -> contextlib.AbstractContextManager:
        """This thread's CUDA stream (a null context on CPU)."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        if getattr(self._local, "stream", None) is None:
            self._local.stream = torch.cuda.Stream(self.device)
        return torch.cuda.stream(self._local.stream)

    def check_health(self) -> None:
        """Raises RuntimeError if the device failed (CUDA errors are sticky: the process must restart)."""
        if self._failure is not None:
            raise RuntimeError(f"detector device failed: {self._failure}")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def warmup(self, *, source_size_wh: tuple[int, int] = (640, 360), max_batch_frames: int = 1) -> None:
        """Runs grey frames at every batch shape up to `max_batch_frames` (allocator, cuDNN planning)."""
        width, height = source_size_wh
        sizes = sorted({batch_bucket(n) for n in range(1, max_batch_frames + 1)}) if self.pad_batches else [max_batch_frames]
        for size in sizes:
            self.detect(np.full((size, height * 3 // 2, width), 128, np.uint8))

    def _autocast(self) -> contextlib.AbstractContextManager:
        """fp16 autocast without its cast cache: cached weights would be freed under a captured graph."""
        if self.fp16:
            return torch.autocast(device_type="cuda", dtype=torch.float16, cache_enabled=False)
        return contextlib.nullcontext()


class _GraphedBatch(NamedTuple):
    """A captured `_device_boxes` and its static tensors: frames are copied in, boxes read out."""

    graph: torch.cuda.CUDAGraph
    frames: torch.Tensor
    boxes: BatchBoxes


def batch_bucket(frames: int) -> int:
    """The size a padded batch of `frames` frames runs at: the next power of two, at least 8.

    On CUDA every batch is padded (`DetectorRuntime.pad_batches`) so that the network sees a handful of
    shapes, each one CUDA graph: Serve's batches vary frame by frame, and on an H200 a replica fed batches
    of many sizes ran at 34 to 783 frames/s, busy all the time, where batches of one size ran at 7,000
    (bench/bench_serve.py).
    """
    return max(8, 1 << (frames - 1).bit_length())


def scaled_input_size_wh(trained_wh: tuple[int, int], *, max_px: int) -> tuple[int, int]:
    """The trained input, scaled to about `max_px` pixels in multiples of 32 if larger."""
    width, height = trained_wh
    scale = (max_px / (width * height)) ** 0.5
    if scale >= 1.0:
        return trained_wh
    return max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32)


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> CUDA when available, else CPU.

    Raises:
        ValueError: CUDA requested but not available.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return resolved


def save_model(model: CenterNet, path: str | Path, *, metadata: dict | None = None, fp16: bool = True) -> Path:
    """Writes inference weights: config, state dict (floating tensors as fp16 when `fp16`), metadata."""
    state = {
        name: tensor.detach().to("cpu", torch.float16 if fp16 and tensor.is_floating_point() else tensor.dtype)
        for name, tensor in model.state_dict().items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": WEIGHTS_FORMAT, "config": model.config.to_dict(), "state_dict": state, "metadata": metadata or {}}
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)
    return path


def load_model(path: str | Path) -> CenterNet:
    """Loads a CenterNet from inference weights or a training checkpoint, in eval mode, float32.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not casaflow CenterNet weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detector weights not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"cannot read detector weights {path}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path} is not a casaflow CenterNet weights file")
    model = CenterNet(ModelConfig.from_dict(payload["config"]))
    model.load_state_dict({name: tensor.float() if tensor.is_floating_point() else tensor for name, tensor in payload["state_dict"].items()})
    return model.eval()


def load_detector(path: str | Path | None = None, **options) -> DetectorRuntime:
    """A runtime for CenterNet weights at `path` (None: the packaged default weights).

    Args:
        path: weights file (`save_model` output or a training checkpoint).
        **options: other `DetectorOptions` fields (`device`, `fp16`, `min_confidence`, `top_k`, ...).

    Raises:
        FileNotFoundError: the weights (default ones included: they are committed after training) are missing.
    """
    return build_runtime(DetectorOptions(weights_path=None if path is None else str(path), **options))


def build_runtime(options: DetectorOptions) -> DetectorRuntime:
    """Builds the runtime that `options` describe (CenterNet weights or a torchvision COCO detector)."""
    if options.num_threads is not None:
        torch.set_num_threads(options.num_threads)
    device = resolve_device(options.device)
    if options.model == "coco":
        from casaflow.detector.coco import CocoDetectorAdapter, build_coco_model

        if options.weights_path is None:
            raise ValueError("model='coco' needs weights_path: a local torchvision COCO state dict")
        detector = CocoDetectorAdapter(
            build_coco_model(options.coco_model, weights_path=options.weights_path), input_size_wh=options.input_size_wh
        )
    else:
        _check_default_weights(options.weights_path)
        model = load_model(options.weights_path or DEFAULT_WEIGHTS_PATH)
        input_size_wh = options.input_size_wh
        if input_size_wh is None and options.cpu_max_input_px and device.type == "cpu":
            input_size_wh = scaled_input_size_wh(model.input_size_wh, max_px=options.cpu_max_input_px)
        detector = CenterNetDetector(model, input_size_wh=input_size_wh)
    return DetectorRuntime(
        detector, device=device, fp16=options.fp16, pad_batches=options.pad_batches, cuda_graphs=options.cuda_graphs,
        min_confidence=options.min_confidence, top_k=options.top_k,
    )


def _check_default_weights(path: str | Path | None) -> None:
    if path is None and not DEFAULT_WEIGHTS_PATH.is_file():
        raise FileNotFoundError(
            f"no packaged detector weights at {DEFAULT_WEIGHTS_PATH}: train them with `casaflow train-detector` "
            "(docs/model_card.md) or pass a weights file"
        )


def _as_uint8_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(frames, torch.Tensor):
        tensor = frames
    else:
        array = np.ascontiguousarray(frames)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.from_numpy(array)
    if tensor.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8, got {tensor.dtype}")
    return tensor
