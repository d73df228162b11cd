"""Whether a track's ground trajectory moved as one road user can, or leapt: an identity switch."""

from __future__ import annotations

import numpy as np

MAX_PLAUSIBLE_SPEED_MPS = 45.0
"""A track step faster than this (160 km/h, twice a city speeder's pace) is an identity switch, not motion."""
MAX_ACCELERATION_MPS2 = 6.0
"""Harder than a car accelerates: a step beyond the previous speed plus this (and jitter) is a leap."""
GROUND_JITTER_M = 2.0
"""Noise of a box's ground point on a distant object, metres."""
LEAP_CONTEXT_STEPS = 3
"""A step is judged against the fastest of the steps before it (one short step is jitter, not a stop)."""


def leaps_since(t_s: np.ndarray, xy_m: np.ndarray, *, since_s: float) -> bool:
    """Whether the track leaps since `since_s`: faster than any road user, or farther in one step than its
    speed over the steps before allows (a standing car cannot be 10 m away 0.8 s later). Either is an
    identity switch, whose trajectory mixes two objects."""
    keep = t_s >= since_s
    first = max(int(np.argmax(keep)) - LEAP_CONTEXT_STEPS - 1, 0) if keep.any() else len(t_s)
    if len(t_s) - first < 2:
        return False
    dt = np.maximum(np.diff(t_s[first:]), 1e-6)
    step_m = np.linalg.norm(np.diff(xy_m[first:], axis=0), axis=1)
    speed = step_m / dt
    padded = np.concatenate([[np.inf] * LEAP_CONTEXT_STEPS, speed[:-1]])
    before_mps = np.lib.stride_tricks.sliding_window_view(padded, LEAP_CONTEXT_STEPS).max(axis=1)
    reach_m = before_mps * dt + 0.5 * MAX_ACCELERATION_MPS2 * dt**2 + GROUND_JITTER_M
    leaps = (speed > MAX_PLAUSIBLE_SPEED_MPS) | (step_m > reach_m)
    return bool(leaps[t_s[first + 1:] >= since_s].any())
