"""Whether a track's ground trajectory moved as one road user can, or leapt: an identity switch."""

from __future__ import annotations

import math

import numpy as np

MAX_PLAUSIBLE_SPEED_MPS = 45.0
"""A track step faster than this (160 km/h, twice a city speeder's pace) is an identity switch, not motion."""
MAX_ACCELERATION_MPS2 = 6.0
"""Harder than a car accelerates: a step beyond the previous speed plus this (and jitter) is a leap."""
GROUND_JITTER_M = 2.0
"""Noise of a box's ground point on a distant object, metres."""
LEAP_CONTEXT_STEPS = 3
"""A step is judged against the track's net velocity over the steps before it: one short step is jitter,
not a stop, and a standing box jittering back and forth has no speed to allow a long step."""
CONTEXT_MAX_GAP_S = 1.0
"""Steps that follow a leap vouch for it only if seen without a longer gap: a track found again after one may
be on another road user (seed 247 cam02: a motorcycle braking to a stand at a stop line, whose box slid 3.5 m
over it; 3.4 s later its track took a car 30 m on, which read as the motorcycle driving on)."""
REVERSAL_MIN_MPS = 4.0
"""A track moving this fast that steps back against its motion as fast has jumped to another road user: no
vehicle turns round within a fraction of a second."""


def too_young_since(t_s: np.ndarray, since_s: float) -> bool:
    """Whether a track has fewer than `LEAP_CONTEXT_STEPS` points before `since_s`: `leaps_since` gives such
    steps the benefit of the doubt, so a verdict that rests on them (a crossing, an approach, a run against
    the lane) cannot be told from an identity switch or a road user coming into view."""
    return int(np.searchsorted(t_s, since_s)) < LEAP_CONTEXT_STEPS


def longest_unseen_s(t_s: np.ndarray, start_s: float, end_s: float) -> float:
    """The longest stretch of [start_s, end_s] without a point of the track, seconds: what a verdict that
    something stood (or moved) over that stretch did not see but inferred across a gap."""
    inside = t_s[(t_s >= start_s) & (t_s <= end_s)]
    return float(np.diff(np.concatenate([[start_s], inside, [end_s]])).max())


def leaps_since(t_s: np.ndarray, xy_m: np.ndarray, *, since_s: float, reversals: bool = False) -> bool:
    """Whether the track leaps since `since_s` (`leap_times_s`)."""
    return bool(len(leap_times_s(t_s, xy_m, since_s=since_s, reversals=reversals)))


def leap_times_s(t_s: np.ndarray, xy_m: np.ndarray, *, since_s: float, reversals: bool = False) -> np.ndarray:
    """The times of the points the track leapt to since `since_s`: faster than any road user, or farther in one
    step than its net velocity over the steps before allows and, where `LEAP_CONTEXT_STEPS` steps follow it (no
    longer than `CONTEXT_MAX_GAP_S` each), than their net velocity allows too (a standing car cannot be 10 m
    away 0.8 s later; a step that leapt is no motion of the track's object, so it allows nothing after it), or,
    with `reversals`, back against its motion (see `REVERSAL_MIN_MPS`; what a wrong-way verdict rests on). Each
    is an identity switch, whose trajectory mixes two objects. A switch breaks the motion on both sides of its
    step; a fast road user whose track lagged behind it (a Kalman filter born at rest, a box late by a frame, a
    track found again after a gap on a context of stale steps) steps on as it stepped, in the same direction
    (seed 218 cam08: a speeder at 70 km/h whose one late point made the next step 0.07 m too long for the steps
    before it; seed 217 cam03: a standing truck's track that stepped 13 m onto a car crossing the junction,
    which drove on across the step at 15 m/s). One stray box is no switch: a point off the path the steps
    before lead along, whose next point is back near it, at most half as far off and within reach, and whose
    next steps go on along it (all within `CONTEXT_MAX_GAP_S`), leapt neither way (seed 250 cam06: a truck's
    box read as a car's for one frame, 11.7 m ahead, then 5.8 m back; seed 249 cam08: a distant truck's box
    2.3 m ahead of its path for one frame). One that stays where it leapt is no stray (seed 248 cam04: a car
    at 90 km/h that the simulator stopped dead 10 m on, its box on the path for one frame, then at a stand)."""
    keep = t_s >= since_s
    # the context of the first step judged, and the step onto a stray box just before it
    first = max(int(np.argmax(keep)) - LEAP_CONTEXT_STEPS - 2, 0) if keep.any() else len(t_s)
    if len(t_s) - first < 2:
        return np.empty(0)
    dt = np.maximum(np.diff(t_s[first:]), 1e-6)
    step_xy = np.diff(xy_m[first:], axis=0)
    step_m = np.linalg.norm(step_xy, axis=1)
    leaps = step_m / dt > MAX_PLAUSIBLE_SPEED_MPS
    # one step at a time (a leap leaves the context of the steps after it), in plain floats: every rule
    # asks this of every track on every frame
    step_x, step_y, dts = step_xy[:, 0].tolist(), step_xy[:, 1].tolist(), dt.tolist()
    leapt = leaps.tolist()

    def velocity(context: range) -> tuple[float, float] | None:
        moved_x = moved_y = moved_s = 0.0
        for j in context:
            if not leapt[j]:
                moved_x, moved_y, moved_s = moved_x + step_x[j], moved_y + step_y[j], moved_s + dts[j]
        return (moved_x / moved_s, moved_y / moved_s) if moved_s > 0 else None

    def off_path_m(steps: range, v: tuple[float, float]) -> tuple[float, float]:
        """(how far the steps end off the path at velocity v, m; how far they could be, m)."""
        x, y, dt_s = sum(step_x[j] for j in steps), sum(step_y[j] for j in steps), sum(dts[j] for j in steps)
        return math.hypot(x - v[0] * dt_s, y - v[1] * dt_s), 0.5 * MAX_ACCELERATION_MPS2 * dt_s**2 + GROUND_JITTER_M

    def beyond_reach(i: int, context: range, *, heading: bool = False) -> bool:
        v = velocity(context)
        if v is None:
            return False
        off_m, reach_m = off_path_m(range(i, i + 1), v)
        if heading:
            return off_m > reach_m
        return math.hypot(step_x[i], step_y[i]) > math.hypot(*v) * dts[i] + reach_m

    def stray(i: int, before: range) -> bool:
        """Whether step i leads to one stray box: the next point is back near the path the steps before lead
        along (at most half as far off it, and within reach), and the track goes on along it."""
        v = velocity(before)
        if v is None or i + 1 + k > len(leapt) or max(dts[i + 1:i + 1 + k]) > CONTEXT_MAX_GAP_S:
            return False
        off_m, _ = off_path_m(range(i, i + 1), v)
        back_off_m, reach_m = off_path_m(range(i, i + 2), v)
        if back_off_m > min(0.5 * off_m, reach_m):
            return False
        on_off_m, on_reach_m = off_path_m(range(i + 2, i + 1 + k), v)
        return on_off_m <= on_reach_m

    k = LEAP_CONTEXT_STEPS
    i = k
    while i < len(leapt):
        before = range(i - k, i)
        if leapt[i] or beyond_reach(i, before):
            if stray(i, before):
                leapt[i] = leapt[i + 1] = False
                i += 2
                continue
            if not leapt[i]:
                after = range(i + 1, min(i + k + 1, len(leapt)))
                leapt[i] = (len(after) < k or max(dts[j] for j in after) > CONTEXT_MAX_GAP_S
                            or beyond_reach(i, after, heading=True))
        i += 1
    leaps = np.array(leapt, bool)
    if reversals:
        leaps |= _reversals(t_s[first:], xy_m[first:])
    stepped_to_s = t_s[first + 1:]
    return stepped_to_s[leaps & (stepped_to_s >= since_s)]


def _reversals(t_s: np.ndarray, xy_m: np.ndarray) -> np.ndarray:
    """(n - 1,) per step: against the motion over the `LEAP_CONTEXT_STEPS` steps before it, both at
    `REVERSAL_MIN_MPS` or faster."""
    k = LEAP_CONTEXT_STEPS
    reverses = np.zeros(max(len(t_s) - 1, 0), bool)
    if len(t_s) <= k + 1:
        return reverses
    step_mps = np.diff(xy_m[k:], axis=0) / np.maximum(np.diff(t_s[k:]), 1e-6)[:, None]
    before_mps = (xy_m[k:-1] - xy_m[:-k - 1]) / np.maximum(t_s[k:-1] - t_s[:-k - 1], 1e-6)[:, None]
    reverses[k:] = against_motion(step_mps, before_mps)
    return reverses


def against_motion(step_mps: np.ndarray, before_mps: np.ndarray) -> np.ndarray:
    """(n,) bool: velocities `step_mps` (n, 2) turned back against `before_mps` (n, 2), both at
    `REVERSAL_MIN_MPS` or faster: a jump to another road user."""
    fast = (np.linalg.norm(step_mps, axis=1) >= REVERSAL_MIN_MPS) & (np.linalg.norm(before_mps, axis=1) >= REVERSAL_MIN_MPS)
    return fast & (np.sum(step_mps * before_mps, axis=1) < 0)
