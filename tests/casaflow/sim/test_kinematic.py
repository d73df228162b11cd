"""Where the scripted road users (wrong-way driver, jaywalker) are staged in the recorded traffic."""

from types import SimpleNamespace

import numpy as np

from casaflow.sim.kinematic import CLEARANCE_M, LATERAL_CLEARANCE_M, _first_clear, _first_gap, _Placement

FPS = 10.0


def _rows(*vehicles):
    """`(frame, xy)` rows, frame-sorted, of vehicles given as `(frames, x_of_frame, y)`."""
    frame = np.concatenate([frames for frames, _, _ in vehicles])
    xy = np.concatenate([np.stack([x(frames), np.full(len(frames), y)], axis=1) for frames, x, y in vehicles])
    order = np.argsort(frame, kind="stable")
    return frame[order], xy[order]


def _wrong_way_gap(vehicle_rows, *, start_frame=0):
    path = np.stack([np.linspace(100.0, 0.0, 120), np.zeros(120)], axis=1)  # 100 m westwards, 12 s
    recording = SimpleNamespace(fps=FPS, n_frames=2000)
    return _first_gap(path, vehicle_rows, recording, start_frame=start_frame, clearance_m=CLEARANCE_M["car"],
                      lateral_clearance_m=LATERAL_CLEARANCE_M["car"])


def test_the_facing_traffic_in_the_next_lane_leaves_a_wrong_way_driver_its_gap():
    frames = np.arange(0, 2000)
    eastbound_next_lane = (frames, lambda f: (f % 200) * 1.0, 3.2)
    assert _wrong_way_gap(_rows(eastbound_next_lane)) == (0, 0)


def test_a_queue_standing_in_its_lane_holds_a_wrong_way_driver_back_until_it_leaves():
    frames = np.arange(0, 2000)
    queued_until = 700
    standing = (frames[frames < queued_until], lambda f: np.full(len(f), 40.0), 0.0)
    first, conflicts = _wrong_way_gap(_rows(standing))
    assert conflicts == 0
    assert queued_until - 120 < first <= queued_until


def test_a_segment_queued_for_the_whole_search_yields_to_one_with_a_gap():
    def placed(first_frame, conflicts):
        return _Placement(None, np.zeros((2, 2)), (0.0, 1.0), 0.0, 1.0, first_frame, conflicts)

    drawn_queued, later, earlier = placed(0, 310), placed(900, 0), placed(300, 0)
    assert _first_clear(iter([drawn_queued, later, earlier])) is earlier
    assert _first_clear(iter([placed(500, 0), earlier])).first_frame == 500, "the drawn segment keeps a gap it has"
    assert _first_clear(iter([drawn_queued, placed(0, 12)])).conflicts == 12, "else the least crowded"
