"""`leaps_since` tells an identity switch from motion: a step no road user could make from its speed, or
that turns back against it. `longest_unseen_s` measures what a verdict inferred across a gap."""

import numpy as np
import pytest

from casaflow.kinematics import leaps_since, longest_unseen_s

T_S = np.arange(8) * 0.2


def test_a_standing_track_that_jumps_a_car_length_leaps():
    xy = np.zeros((8, 2))
    xy[-1] = [7.0, 0.0]
    assert leaps_since(T_S, xy, since_s=T_S[-1])
    assert not leaps_since(T_S[:-1], xy[:-1], since_s=T_S[0])


def test_the_first_step_judged_is_judged_against_the_steps_before_it():
    xy = np.zeros((8, 2))
    xy[-1] = [7.0, 0.0]
    assert leaps_since(T_S[-5:], xy[-5:], since_s=T_S[-1])


def test_a_leap_allows_no_leap_after_it():
    """Seed 222 cam03: a track jumps 25 m onto a standing car, then 4.5 m in 0.2 s onto a passing one (a
    wrong-way driver, read from the two legs)."""
    xy = np.zeros((8, 2))
    xy[3:] = [25.0, 0.0]
    xy[4:] = [25.3, 0.0]
    xy[6:] = [29.8, 0.0]
    assert leaps_since(T_S[:7], xy[:7], since_s=T_S[6])
    assert not leaps_since(T_S[:6], xy[:6], since_s=T_S[5])


def test_a_jittering_standing_box_allows_no_long_step():
    """Seed 222 cam01 (stage-5 detector): a motorcycle's track switched onto a car standing at a red light,
    whose box jittered by up to 1.4 m a step, then onto another 3.9 m ahead in 0.4 s, across the stop line:
    a red-light runner out of a standing start. Judged against its fastest step (7 m/s of jitter) that was
    motion; the net velocity over the steps says the car stood."""
    t_s = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.4])
    along = np.array([-3.6, -3.9, -3.5, -3.6, -2.3, -3.0, 0.9])
    xy = np.stack([along, np.zeros(7)], axis=1)
    assert leaps_since(t_s, xy, since_s=t_s[-1])
    assert not leaps_since(t_s[:-1], xy[:-1], since_s=t_s[0])


@pytest.mark.parametrize("found_after_s, leaps", [(3.4, True), (0.4, False)])
def test_steps_after_a_gap_do_not_vouch_for_a_leap(found_after_s, leaps):
    """Seed 247 cam02: a motorcycle braking to a stand, whose box slid 3.5 m on in 0.2 s, then stood; its track
    took a car 30 m on, found 3.4 s later, which read as the motorcycle driving on across the slide. Found
    0.4 s later, that far on, it was the same road user driving on."""
    t_s = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.2 + found_after_s, 1.4 + found_after_s])
    along = np.array([-7.7, -5.9, -4.9, -4.3, -3.9, -0.4, -0.2, -0.2 + 10.0 * found_after_s, 1.8 + 10.0 * found_after_s])
    xy = np.stack([along, np.zeros(9)], axis=1)
    assert leaps_since(t_s, xy, since_s=t_s[5]) == leaps


def test_steady_driving_and_braking_do_not_leap():
    cruise = np.stack([np.arange(8) * 2.8, np.zeros(8)], axis=1)  # 14 m/s
    assert not leaps_since(T_S, cruise, since_s=T_S[0])
    braking = np.stack([np.cumsum([0, 2.8, 2.4, 2.0, 1.6, 1.2, 0.8, 0.4]), np.zeros(8)], axis=1)
    assert not leaps_since(T_S, braking, since_s=T_S[0])


def test_faster_than_any_road_user_leaps_whatever_came_before():
    xy = np.stack([np.arange(8) * 10.0, np.zeros(8)], axis=1)  # 50 m/s
    assert leaps_since(T_S, xy, since_s=T_S[0])


def test_a_step_back_against_the_motion_is_a_reversal():
    ahead = np.stack([np.zeros(8), np.arange(8) * 2.0], axis=1)  # 10 m/s north
    ahead[-1, 1] = ahead[-2, 1] - 2.0  # then 10 m/s south: another car
    assert leaps_since(T_S, ahead, since_s=T_S[0], reversals=True)
    assert not leaps_since(T_S, ahead, since_s=T_S[0]), "within reach of its speed: only the direction tells"


def test_jitter_and_slow_creep_are_not_reversals():
    rng = np.random.default_rng(0)
    standing = rng.normal(0.0, 0.3, (8, 2))
    assert not leaps_since(T_S, standing, since_s=T_S[0], reversals=True)
    creeping_back = np.stack([np.zeros(8), -np.arange(8) * 0.3], axis=1)
    assert not leaps_since(T_S, creeping_back, since_s=T_S[0], reversals=True)


def test_a_late_point_of_a_fast_car_is_no_leap():
    """Seed 218 cam08: a speeder at 70 km/h whose box came late at 20.0 s and not at all at 20.2 s; the next
    step was 0.07 m longer than the steps before allowed. The steps after it go on at the same pace."""
    t_s = np.array([19.0, 19.2, 19.4, 19.6, 19.8, 20.0, 20.4, 20.6, 20.8, 21.0, 21.2])
    along = np.array([115.74, 119.47, 124.29, 127.67, 131.46, 133.65, 142.45, 146.53, 150.67, 154.55, 158.4])
    across = np.array([-215.96, -215.88, -216.0, -215.98, -216.0, -215.45, -215.79, -215.92, -215.97, -215.99, -215.95])
    xy = np.stack([across, along], axis=1)
    assert not leaps_since(t_s, xy, since_s=20.4)
    assert leaps_since(t_s[:7], xy[:7], since_s=20.4), "until steps after it show the pace, it is judged on those before"


def test_a_switch_onto_a_car_ahead_leaps_though_both_drive_alike():
    xy = np.stack([np.zeros(12), np.r_[np.arange(6) * 2.0, 6.0 + np.arange(6, 12) * 2.0]], axis=1)  # 10 m/s, 6 m jump
    t_s = np.arange(12) * 0.2
    assert leaps_since(t_s, xy, since_s=t_s[0])


def test_one_stray_box_leaps_neither_way():
    """Seed 250 cam06: a truck at 38 km/h whose box was read as a car's for one frame, 11.7 m ahead, faster than
    any road user; the next box was back on its path (5.8 m behind the stray one), and 3 s later it struck a
    braking car. Its approach holds no identity switch."""
    t_s = 26.0 + np.arange(11) * 0.2
    along = -np.array([95.19, 92.84, 91.13, 88.73, 77.05, 82.87, 82.37, 81.01, 78.72, 76.43, 73.85])
    xy = np.stack([along, np.zeros(11)], axis=1)
    assert not leaps_since(t_s, xy, since_s=t_s[4])
    assert not leaps_since(t_s, xy, since_s=t_s[5])


def test_one_box_ahead_of_a_distant_truck_is_a_stray_not_a_leap():
    """Seed 249 cam08: a truck at 9 m/s 60 m from the camera, one box 2.3 m ahead of its path, the next one
    back on it (0.7 m off); read as a leap the truck's approach to the motorcycle it hit was an identity switch."""
    t_s = np.arange(10) * 0.2
    along = np.array([130.67, 133.26, 134.83, 137.36, 138.52, 142.59, 142.70, 146.52, 147.93, 149.27])
    xy = np.stack([along, np.zeros(10)], axis=1)
    assert not leaps_since(t_s, xy, since_s=t_s[0])


def test_a_box_that_stays_where_it_leapt_is_no_stray():
    """A switch onto a car 6 m ahead whose next box is as far off the path: not one stray box."""
    t_s = np.arange(10) * 0.2
    along = np.r_[np.arange(5) * 2.0, 6.0 + np.arange(5, 10) * 2.0]
    xy = np.stack([along, np.zeros(10)], axis=1)
    assert leaps_since(t_s, xy, since_s=t_s[5])


def test_a_box_that_stands_where_it_leapt_is_no_stray():
    """Seed 248 cam04: a car at 90 km/h that the simulator stopped dead 10 m on, in 0.2 s (its box leapt that
    far): the next box fell on the path the car had driven along, then it stood. Read as a stray box, the
    stop line it leapt across was crossed on red."""
    t_s = np.array([54.4, 54.6, 54.8, 55.0, 55.2, 55.4, 55.6, 55.8, 56.2, 56.4, 56.6, 56.8])
    along = np.array([172.5, 177.2, 182.4, 187.5, 192.8, 197.6, 208.2, 208.3, 209.3, 209.5, 210.3, 210.9])
    xy = np.stack([along, np.zeros(12)], axis=1)
    assert leaps_since(t_s, xy, since_s=55.6)


def test_the_longest_unseen_stretch_counts_the_window_edges():
    t_s = np.array([0.0, 0.2, 0.4, 1.4, 1.6])
    assert longest_unseen_s(t_s, 0.0, 1.6) == pytest.approx(1.0)
    assert longest_unseen_s(t_s, 0.0, 0.4) == pytest.approx(0.2)
    assert longest_unseen_s(t_s, 1.4, 2.4) == pytest.approx(0.8), "nothing seen after 1.6"
    assert longest_unseen_s(t_s, 2.0, 3.0) == pytest.approx(1.0), "nothing seen at all"


@pytest.mark.parametrize("heading_deg, leaps", [(90.0, True), (0.0, False)])
def test_a_step_onto_a_road_user_driving_another_way_leaps(heading_deg, leaps):
    """Seed 217 cam03: a standing truck's track, unseen for a second, came back 13 m ahead on a car crossing
    the junction at 15 m/s, which drove on at right angles to the step: the step's length was within the
    reach of the car's speed, its direction was not. A car that the track lagged behind steps on as it
    stepped."""
    t_s = np.concatenate([np.arange(6) * 0.2, 2.0 + np.arange(5) * 0.2])
    heading = np.radians(heading_deg)
    after = np.array([13.0, 0.0]) + 15.0 * np.outer(t_s[6:] - t_s[6], [np.cos(heading), np.sin(heading)])
    xy = np.vstack([np.zeros((6, 2)), after])
    assert leaps_since(t_s, xy, since_s=t_s[6]) == leaps
