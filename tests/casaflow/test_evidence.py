"""Pins incident evidence: a JPEG snapshot of the detection frame with the incident's tracks in red, an MP4
clip remuxed from the packet ring that starts on a keyframe and spans start - 10 s .. detection + 10 s, cut
only once due (or at flush), never an exception when the ring has no keyframe, a bounded pending list, and
a store that writes, finds and prunes evidence files under a retention period and refuses unsafe ids."""

import io
import os
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from torchvision.io import decode_jpeg

from casaflow.detections import CLASS_IDS, Detections
from casaflow.detector.preprocess import rgb_to_yuv420_numpy
from casaflow.evidence import Evidence, EvidenceRecorder, EvidenceStore, render_snapshot, track_ids_of
from casaflow.incidents import Incident
from casaflow.source import Frame, PacketRing, PyAVSource

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
WIDTH, HEIGHT = 160, 96
FPS = 25
GOP = 40
DURATION_S = 28


def luma_of(index: int) -> int:
    return 20 + index % 200


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    """28 s of H.264 at 25 fps, a keyframe every 1.6 s; frame i is flat grey `luma_of(i)`."""
    path = tmp_path_factory.mktemp("evidence") / "cam01.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.gop_size = GOP
        stream.options = {"bf": "0", "sc_threshold": "0", "preset": "ultrafast"}
        for i in range(DURATION_S * FPS):
            yuv = np.full((HEIGHT * 3 // 2, WIDTH), 128, np.uint8)
            yuv[:HEIGHT] = luma_of(i)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = i * 1000 // FPS, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def make_source(url: str) -> PyAVSource:
    return PyAVSource("cam01", url, analysis_fps=5, start_time=START, realtime=False, hwaccel="none")


def make_incident(incident_id: str = "stopped_vehicle:cam01:s1:7:1740816012000", *, start_s: float = 12.0,
                  detected_s: float = 14.0, object_ids: tuple[str, ...] = ("cam01/7",)) -> Incident:
    return Incident(incident_id=incident_id, type="stopped_vehicle", camera_id="cam01", segment_id="s1",
                    start_ts=at(start_s), detected_ts=at(detected_s), lon=2.17, lat=41.38, severity=2,
                    object_ids=object_ids)


def two_tracks() -> Detections:
    return Detections(xyxy=[[20, 20, 70, 60], [100, 30, 150, 80]], confidence=[0.9, 0.8],
                      class_id=[CLASS_IDS["car"], CLASS_IDS["bus"]], tracker_id=[7, 9])


def grey_frame(ts: datetime = START) -> Frame:
    rgb = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    return Frame("cam01", 0, ts, rgb_to_yuv420_numpy(rgb))


def decode(jpeg: bytes) -> np.ndarray:
    """(H, W, 3) int RGB of JPEG bytes."""
    return decode_jpeg(torch.frombuffer(bytearray(jpeg), dtype=torch.uint8)).permute(1, 2, 0).numpy().astype(int)


def is_red(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] > 170) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)


def test_snapshot_draws_the_incident_tracks_thick_in_red_with_a_label():
    image = decode(render_snapshot(grey_frame(), two_tracks(), highlight={7}))
    assert image.shape == (HEIGHT, WIDTH, 3)
    left_edge_of_7 = image[35:58, 19:24]
    assert is_red(left_edge_of_7).mean() > 0.5
    label_of_7 = image[21:36, 22:70]
    assert is_red(label_of_7).mean() > 0.3 and (label_of_7.min(axis=-1) > 150).sum() > 10
    left_edge_of_9 = image[40:78, 99:102]
    assert not is_red(left_edge_of_9).any()
    assert (left_edge_of_9[..., 1] > left_edge_of_9[..., 0] + 60).mean() > 0.3
    background = image[85:95, 75:95]
    assert np.abs(background - 128).max() < 12


def test_snapshot_honours_full_range_yuv_and_survives_odd_boxes():
    video_range = Frame.blank("cam01", 0, ts=START, width=WIDTH, height=HEIGHT, luma=16)
    full_range = Frame("cam01", 0, START, video_range.yuv, full_range=True)
    assert decode(render_snapshot(video_range, Detections.empty())).max() < 8
    assert abs(decode(render_snapshot(full_range, Detections.empty())).mean() - 16) < 4
    odd = Detections(xyxy=[[170, 100, -5, -5], [500, 500, 600, 600], [np.nan, 0, 10, 10]], confidence=[1, 1, 1],
                     class_id=[0, 0, 0], tracker_id=[1, 2, 3])
    assert decode(render_snapshot(grey_frame(), odd, highlight={1, 2, 3})).shape == (HEIGHT, WIDTH, 3)


def test_object_ids_map_to_track_ids_of_the_incident_camera():
    incident = make_incident(object_ids=("cam01/7", "cam02/3", "cam01/x", "cam01/12"))
    assert track_ids_of(incident) == {7, 12}


def test_clip_is_due_after_detection_plus_after_s_and_spans_the_incident(video):
    source, recorder = make_source(video), EvidenceRecorder("cam01")
    incident = make_incident(start_s=12.0, detected_s=14.0)
    polled: list[tuple[float, list[Evidence]]] = []
    for frame in source:
        if frame.ts == incident.detected_ts:
            recorder.add(incident, frame, two_tracks())
        polled.append(((frame.ts - START).total_seconds(), recorder.poll(frame.ts, source.ring)))
    assert all(not found for t, found in polled if t < 24.0)
    due = [(t, found) for t, found in polled if found]
    assert [t for t, _ in due] == [24.0] and recorder.pending == 0
    (evidence,) = due[0][1]
    assert evidence.reason is None and evidence.incident_id == incident.incident_id
    assert decode(evidence.snapshot_jpeg).shape == (HEIGHT, WIDTH, 3)
    first_keyframe_s = 1.6
    assert evidence.clip_start_ts == at(first_keyframe_s) and evidence.clip_end_ts == at(24.0)
    assert at(2.0 - GOP / FPS) < evidence.clip_start_ts <= at(2.0)
    with av.open(io.BytesIO(evidence.clip_mp4)) as container:
        decoded = list(container.decode(video=0))
    assert decoded[0].key_frame
    assert len(decoded) == round((24.0 - first_keyframe_s) * FPS) + 1
    assert abs(float(decoded[0].to_ndarray()[:HEIGHT].mean()) - luma_of(round(first_keyframe_s * FPS))) < 2
    assert decoded[-1].time - decoded[0].time == pytest.approx(24.0 - first_keyframe_s, abs=1e-3)


def test_flush_cuts_pending_clips_at_what_the_ring_holds(video):
    source, recorder = make_source(video), EvidenceRecorder("cam01")
    incident = make_incident(start_s=12.0, detected_s=14.0)
    for frame in source:
        if frame.ts == incident.detected_ts:
            recorder.add(incident, frame, two_tracks())
        assert recorder.poll(frame.ts, source.ring) == []
        if frame.ts >= at(16.0):
            break
    (evidence,) = recorder.flush(source.ring)
    assert recorder.pending == 0 and evidence.clip_mp4 is not None and evidence.reason is None
    assert evidence.clip_start_ts == at(1.6) and at(16.0) <= evidence.clip_end_ts < at(17.0)


def test_a_ring_without_keyframe_gives_no_clip_and_says_why():
    recorder = EvidenceRecorder("cam01")
    incident = make_incident()
    recorder.add(incident, grey_frame(incident.detected_ts), two_tracks())
    (evidence,) = recorder.poll(at(24.0), PacketRing())
    assert evidence.clip_mp4 is None and evidence.clip_start_ts is None and evidence.snapshot_jpeg is not None
    assert "no keyframe" in evidence.reason


def test_pending_evidence_is_bounded_and_counts_drops():
    recorder = EvidenceRecorder("cam01", max_pending=2)
    frame = grey_frame()
    for name in ("a", "b", "b", "c"):
        recorder.add(make_incident(name), frame, Detections.empty())
    assert recorder.pending == 2 and recorder.dropped == 1
    assert [e.incident_id for e in recorder.flush(PacketRing())] == ["b", "c"]


def test_store_saves_finds_and_prunes_by_retention(tmp_path):
    store = EvidenceStore(tmp_path / "evidence", retention_s=3600)
    old = Evidence("speeding:cam01:s1:3:1", "cam01", b"jpeg-old", b"mp4-old", at(0), at(20), None)
    new = Evidence("speeding:cam01:s1:4:2", "cam01", b"jpeg-new", None, None, None, "clip: no keyframe")
    clip_path, snapshot_path = store.save(old)
    assert clip_path.read_bytes() == b"mp4-old" and snapshot_path.read_bytes() == b"jpeg-old"
    assert store.save(new) == (None, store.root / "speeding:cam01:s1:4:2.jpg")
    assert store.paths(old.incident_id) == (clip_path, snapshot_path)
    assert store.paths(new.incident_id) == (None, store.root / "speeding:cam01:s1:4:2.jpg")
    assert store.paths("never") == (None, None)
    now = datetime.now(UTC)
    two_hours_ago = (now - timedelta(hours=2)).timestamp()
    for path in (clip_path, snapshot_path):
        os.utime(path, (two_hours_ago, two_hours_ago))
    assert EvidenceStore(store.root, retention_s=None).prune(now) == 0
    assert store.prune(now) == 2
    assert store.paths(old.incident_id) == (None, None) and store.paths(new.incident_id)[1] is not None
    assert sorted(p.name for p in store.root.iterdir()) == ["speeding:cam01:s1:4:2.jpg"]


@pytest.mark.parametrize("bad_id", ["", "../etc/passwd", "a/b", "a\\b", "..", ".hidden", "x" * 300])
def test_store_refuses_ids_unfit_for_file_names(tmp_path, bad_id):
    store = EvidenceStore(tmp_path, retention_s=None)
    with pytest.raises(ValueError, match="unfit"):
        store.save(Evidence(bad_id, "cam01", b"jpeg", None, None, None, None))
    with pytest.raises(ValueError, match="unfit"):
        store.paths(bad_id)
