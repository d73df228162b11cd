"""The detector deployment pins the serving contract on a real (CPU) Ray Serve: one request is a stack of
YUV420 frames, stacks of different sizes batch together, each frame gets `Detections` in its own source
pixels, `user_config` batch settings apply through `reconfigure()`, and bad stacks are refused."""

import threading

import numpy as np
import pytest

from casaflow.detections import Detections
from casaflow.detector.model import ModelConfig, build_model
from casaflow.detector.runtime import DetectorOptions, save_model

serve = pytest.importorskip("ray.serve")


@pytest.fixture(scope="module")
def detector_handle(ray_session, tmp_path_factory):
    from serve.detector import DetectorDeployment

    weights = save_model(build_model(ModelConfig(input_size_wh=(128, 64))), tmp_path_factory.mktemp("serve") / "w.pt")
    options = DetectorOptions(weights_path=str(weights), device="cpu", min_confidence=0.0, top_k=5, num_threads=1).model_dump()
    app = DetectorDeployment.options(
        ray_actor_options={"num_cpus": 0.25}, user_config={"max_batch_frames": 8, "batch_wait_timeout_s": 0.05}
    ).bind(options)
    handle = serve.run(app, name="detector-test", route_prefix=None)
    yield handle, app, options
    serve.shutdown()


def test_stacks_of_two_sizes_in_one_batch(detector_handle):
    handle, _, _ = detector_handle
    rng = np.random.default_rng(0)
    large = rng.integers(0, 256, (3, 180, 192), dtype=np.uint8)  # 3 frames of 192x120
    small = rng.integers(0, 256, (2, 72, 96), dtype=np.uint8)  # 2 frames of 96x48
    responses = [handle.remote(large), handle.remote(small)]
    results = [response.result(timeout_s=60) for response in responses]
    assert [len(r) for r in results] == [3, 2]
    for frames, (width, height) in zip(results, [(192, 120), (96, 48)]):
        for detections in frames:
            assert isinstance(detections, Detections) and len(detections) == 5
            assert detections.xyxy.dtype == np.float32 and detections.xyxy.shape == (5, 4)
            assert detections.confidence.dtype == np.float32 and detections.class_id.dtype == np.int64
            assert (detections.xyxy[:, [0, 2]] <= width).all() and (detections.xyxy[:, [1, 3]] <= height).all()


def test_bad_stacks_are_refused(detector_handle):
    handle, _, _ = detector_handle
    with pytest.raises(Exception, match="yuv420p|H\\*3//2"):
        handle.remote(np.zeros((1, 181, 192), np.uint8)).result(timeout_s=60)
    with pytest.raises(Exception, match="max_batch_frames"):
        handle.remote(np.zeros((9, 72, 96), np.uint8)).result(timeout_s=60)


def test_reconfigure_applies_batch_settings(detector_handle):
    handle, app, options = detector_handle
    assert handle.batch_settings.remote().result(timeout_s=60) == {"max_batch_frames": 8, "batch_wait_timeout_s": 0.05}
    from serve.detector import DetectorDeployment

    updated = DetectorDeployment.options(
        ray_actor_options={"num_cpus": 0.25}, user_config={"max_batch_frames": 16, "batch_wait_timeout_s": 0.01}
    ).bind(options)
    handle = serve.run(updated, name="detector-test", route_prefix=None)
    assert handle.batch_settings.remote().result(timeout_s=60) == {"max_batch_frames": 16, "batch_wait_timeout_s": 0.01}
    assert len(handle.remote(np.zeros((12, 72, 96), np.uint8)).result(timeout_s=60)) == 12


def test_load_stats_count_the_frames_run(detector_handle):
    handle, _, _ = detector_handle
    before = handle.load_stats.remote().result(timeout_s=60)
    stack = np.zeros((3, 72, 96), np.uint8)
    for response in [handle.remote(stack), handle.remote(stack)]:
        response.result(timeout_s=60)
    after = handle.load_stats.remote().result(timeout_s=60)
    assert after["frames"] - before["frames"] == 6
    assert 1 <= after["batches"] - before["batches"] <= 2
    assert after["busy_s"] > before["busy_s"]



def test_every_batch_thread_is_warmed_up_at_every_batch_size(tmp_path, monkeypatch):
    import serve.detector as detector_module
    from casaflow.detector.runtime import DetectorRuntime

    warmed, ran = [], set()
    warmup, detect_stacks = DetectorRuntime.warmup, DetectorRuntime.detect_stacks

    def recording_warmup(runtime, **kwargs):
        warmed.append((threading.get_ident(), kwargs["max_batch_frames"]))
        return warmup(runtime, **kwargs)

    def recording_detect_stacks(runtime, stacks):
        ran.add(threading.get_ident())
        return detect_stacks(runtime, stacks)

    monkeypatch.setattr(DetectorRuntime, "warmup", recording_warmup)
    monkeypatch.setattr(DetectorRuntime, "detect_stacks", recording_detect_stacks)
    monkeypatch.setattr(detector_module, "worker_threads", lambda device_type: 2)
    weights = save_model(build_model(ModelConfig(input_size_wh=(128, 64))), tmp_path / "w.pt")
    options = DetectorOptions(weights_path=str(weights), device="cpu", pad_batches=True, num_threads=1)
    deployment = detector_module.DetectorDeployment.func_or_class(options.model_dump())
    deployment.reconfigure({"max_batch_frames": 16})
    threads = {thread for thread, size in warmed if size == 16}
    assert len(threads) == 2 and threading.get_ident() not in threads

    stack = np.zeros((3, 72, 96), np.uint8)
    batches = list(deployment._executor.map(deployment._run_batch, [[stack]] * 4))
    assert [len(batch[0]) for batch in batches] == [3] * 4
    assert ran and ran <= threads
