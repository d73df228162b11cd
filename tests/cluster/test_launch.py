import pytest

from cluster.launch import LaunchOptions, detector_gpus


@pytest.mark.parametrize(
    ("device", "cluster_gpus", "expected"),
    [("auto", 0.0, 0.0), ("auto", 1.0, 1.0), ("cpu", 4.0, 0.0), ("cuda", 1.0, 1.0), ("cuda:0", 2.0, 1.0)],
)
def test_the_detector_reserves_a_gpu_exactly_when_it_runs_on_one(device, cluster_gpus, expected):
    assert detector_gpus(LaunchOptions(detector={"device": device}), cluster_gpus) == expected


def test_cuda_on_a_cluster_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no GPU"):
        detector_gpus(LaunchOptions(detector={"device": "cuda"}), 0.0)


def test_an_explicit_share_of_a_gpu_wins():
    assert detector_gpus(LaunchOptions(detector={"device": "cuda"}, detector_gpus=0.5), 1.0) == 0.5


def test_replicas_that_need_more_gpus_than_the_cluster_has_are_a_clear_error():
    with pytest.raises(ValueError, match="2 detector replicas of 1 GPU need 2 GPUs; the Ray cluster has 1"):
        detector_gpus(LaunchOptions(detector={"device": "cuda"}, detector_replicas=2), 1.0)


def test_replicas_can_share_a_gpu():
    options = LaunchOptions(detector={"device": "cuda"}, detector_gpus=0.5, detector_replicas=2)
    assert detector_gpus(options, 1.0) == 0.5
