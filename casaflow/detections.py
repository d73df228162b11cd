"""The one detection type that every stage passes along: parallel numpy arrays, one row per object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("car", "bus", "truck", "motorcycle", "bicycle", "pedestrian")
"""Road-user classes; a detection's `class_id` indexes this tuple."""

CLASS_IDS: dict[str, int] = {name: index for index, name in enumerate(CLASS_NAMES)}

TYPICAL_LENGTH_M: tuple[float, ...] = (4.5, 12.0, 8.0, 2.2, 1.8, 0.5)
"""Typical ground length of each class of `CLASS_NAMES`, metres (footprints, line occupancy)."""

VEHICLE_CLASSES: tuple[str, ...] = CLASS_NAMES[:5]
"""The classes that are counted as vehicles (all but pedestrians)."""


@dataclass(frozen=True, eq=False)
class Detections:
    """Objects found in one frame.

    Attributes:
        xyxy: (n, 4) float32 boxes `x1, y1, x2, y2` in source-image pixels.
        confidence: (n,) float32 scores in 0..1.
        class_id: (n,) int64 indices into `CLASS_NAMES`.
        tracker_id: optional (n,) int64 track ids, unique within one camera.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (n, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        fields = {
            "xyxy": xyxy,
            "confidence": np.asarray(self.confidence, dtype=np.float32).reshape(-1),
            "class_id": np.asarray(self.class_id, dtype=np.int64).reshape(-1),
        }
        if self.tracker_id is not None:
            fields["tracker_id"] = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
        for name, values in fields.items():
            if values.shape[0] != n:
                raise ValueError(f"{name} has {values.shape[0]} rows, xyxy has {n}")
            object.__setattr__(self, name, values)

    @classmethod
    def empty(cls) -> Detections:
        """Returns detections with no rows."""
        return cls(
            xyxy=np.empty((0, 4), np.float32),
            confidence=np.empty(0, np.float32),
            class_id=np.empty(0, np.int64),
        )

    @classmethod
    def merge(cls, detections_list: Sequence[Detections]) -> Detections:
        """Concatenates rows; `tracker_id` is kept only if every non-empty input has one.

        Raises:
            ValueError: if some non-empty inputs carry tracker ids and others do not.
        """
        non_empty = [d for d in detections_list if len(d)]
        if not non_empty:
            return cls.empty()
        with_ids = [d.tracker_id is not None for d in non_empty]
        if any(with_ids) and not all(with_ids):
            raise ValueError("cannot merge detections with and without tracker_id")
        return cls(
            xyxy=np.concatenate([d.xyxy for d in non_empty]),
            confidence=np.concatenate([d.confidence for d in non_empty]),
            class_id=np.concatenate([d.class_id for d in non_empty]),
            tracker_id=np.concatenate([d.tracker_id for d in non_empty]) if all(with_ids) else None,
        )

    def __len__(self) -> int:
        return self.xyxy.shape[0]

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> Detections:
        """Selects rows by boolean mask, integer indices, slice or a single integer."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        index = index if isinstance(index, slice) else np.asarray(index)
        if isinstance(index, np.ndarray) and index.size == 0 and index.dtype != bool:
            index = index.astype(np.int64)
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != (len(self),):
            raise IndexError(f"boolean mask of shape {index.shape} for {len(self)} detections")
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
        )

    def with_tracker_id(self, tracker_id: np.ndarray) -> Detections:
        """Returns a copy with `tracker_id` (n,) set."""
        return replace(self, tracker_id=tracker_id)

    @property
    def class_name(self) -> np.ndarray:
        """(n,) class names as a numpy str array."""
        return np.asarray(CLASS_NAMES, dtype=object)[self.class_id].astype(str)

    @property
    def height_px(self) -> np.ndarray:
        """(n,) float32 box heights in pixels."""
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def center_xy(self) -> np.ndarray:
        """(n, 2) float32 box centres in pixels."""
        return (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2
