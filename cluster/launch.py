"""Bring the cluster up for an inventory: the aggregator, the detector and API deployments, and one
CameraGroup actor per group of cameras. Used by `casaflow run` (replay) and `casaflow up` (live)."""

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import ray
from ray import serve

from actors.aggregator import Aggregator
from actors.camera_group import CameraGroup
from casaflow.inventory import Inventory, load_inventory
from serve.api import ApiIngress
from serve.detector import DetectorDeployment

DETECTOR_APP = "detector"
API_APP = "api"


@dataclass(frozen=True)
class LaunchOptions:
    """How much of the machine each piece takes, and how cameras are grouped."""

    cameras_per_group: int = 8
    group_cpus: float | None = None
    """CPUs reserved per CameraGroup; None shares what the cluster has left after the detector and the
    aggregator among the groups (at most 0.5 each), so that every group gets scheduled."""
    detector_cpus: float = 1.0
    """CPUs each detector replica reserves (and its torch threads)."""
    detector_gpus: float | None = None
    """GPUs each detector replica reserves; None: one where it runs on CUDA (see `detector_gpus`)."""
    detector_replicas: int = 1
    detector: dict = field(default_factory=dict)
    """DetectorOptions (weights_path, device, ...) for the deployment."""
    max_batch_frames: int | None = None
    """Most frames per detector batch; None: 256 on a GPU, 16 on a CPU (larger CPU batches were slower)."""
    host: str = "127.0.0.1"
    port: int = 8000
    api: bool = True
    window_s: float = 60.0
    evidence_retention_s: float | None = 30 * 86400.0
    """Evidence clips and snapshots older than this are deleted; None keeps them."""
    webhooks: tuple[str, ...] = ()
    """URLs that receive every incident event as a JSON POST."""


@dataclass
class RunningCity:
    inventory: Inventory
    aggregator: object
    groups: list
    runs: list


def detector_options(weights: Path | None, device: str, input_size_wh: tuple[int, int] | None = None) -> dict:
    """DetectorOptions for the deployment, checked here so that a missing file is one clear line."""
    from casaflow.detector.runtime import DEFAULT_WEIGHTS_PATH

    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS_PATH
    if not path.is_file():
        hint = "" if weights is not None else "; train them with `casaflow train-detector` (docs/model_card.md)"
        raise FileNotFoundError(f"detector weights not found: {path}{hint}")
    return {"device": device, "weights_path": str(path), "input_size_wh": input_size_wh}


def detector_gpus(options: LaunchOptions, cluster_gpus: float) -> float:
    """GPUs for each detector replica: Ray hides every GPU from an actor that reserves none, so a replica
    asked to run on CUDA (or on `auto` in a cluster with a GPU) must reserve one, or a share of one. Replicas
    that need more GPUs than the cluster has would wait for them forever: a clear error instead."""
    device = str(options.detector.get("device", "auto"))
    if device.startswith("cuda") and cluster_gpus <= 0:
        raise ValueError("the detector is asked to run on CUDA but the Ray cluster has no GPU")
    if options.detector_gpus is not None:
        gpus = options.detector_gpus
    else:
        gpus = 1.0 if device != "cpu" and cluster_gpus >= 1 else 0.0
    if gpus * options.detector_replicas > cluster_gpus:
        raise ValueError(f"{options.detector_replicas} detector replicas of {gpus:g} GPU need "
                         f"{gpus * options.detector_replicas:g} GPUs; the Ray cluster has {cluster_gpus:g}")
    return gpus


def connect(address: str | None, *, num_cpus: int | None = None) -> None:
    """Join a Ray cluster at `address`, or start a local one."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def launch(
    inventory_path: Path,
    *,
    out_dir: Path | None,
    realtime: bool,
    options: LaunchOptions,
    start_time: datetime | None = None,
) -> RunningCity:
    """Start every piece for the inventory and set the camera groups running."""
    inventory = load_inventory(inventory_path)
    store = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="casaflow-"))
    aggregator = Aggregator.options(num_cpus=0.1).remote(
        str(inventory_path), str(out_dir) if out_dir else None, store_dir=str(store),
        evidence_retention_s=options.evidence_retention_s, webhooks=options.webhooks,
    )
    gpus = detector_gpus(options, ray.cluster_resources().get("GPU", 0.0))
    max_batch_frames = options.max_batch_frames or (256 if gpus else 16)
    serve.start(http_options={"host": options.host, "port": options.port})
    detector = DetectorDeployment.options(
        num_replicas=options.detector_replicas,
        ray_actor_options={"num_cpus": options.detector_cpus, "num_gpus": gpus},
        user_config={"max_batch_frames": max_batch_frames},
    ).bind({"num_threads": max(1, round(options.detector_cpus)), **options.detector})
    serve.run(detector, name=DETECTOR_APP, route_prefix=None)
    if options.api:
        serve.run(ApiIngress.bind(aggregator), name=API_APP, route_prefix="/")
    groups, runs = start_groups(
        inventory, inventory_path.parent, aggregator=aggregator, realtime=realtime, options=options,
        start_time=start_time if start_time is not None or realtime else inventory.start_time,
        max_stack_frames=max_batch_frames,
    )
    return RunningCity(inventory=inventory, aggregator=aggregator, groups=groups, runs=runs)


def start_groups(inventory, base_dir: Path, *, aggregator, realtime: bool, options: LaunchOptions, start_time,
                 max_stack_frames: int):
    cameras = inventory.cameras
    size = options.cameras_per_group
    n_groups = -(-len(cameras) // size)
    group_cpus = options.group_cpus
    if group_cpus is None:
        spare = ray.cluster_resources().get("CPU", 1.0) - options.detector_cpus - 0.2
        group_cpus = max(0.01, min(0.5, spare / n_groups))
    groups = [
        CameraGroup.options(num_cpus=group_cpus).remote(
            f"group-{k // size:03d}", cameras[k : k + size], base_dir=str(base_dir), start_time=start_time,
            detector_app=DETECTOR_APP, aggregator=aggregator, realtime=realtime, window_s=options.window_s,
            incident_rules=inventory.incident_rules, max_stack_frames=max_stack_frames,
        )
        for k in range(0, len(cameras), size)
    ]
    return groups, [group.run.remote() for group in groups]


def shutdown(city: RunningCity | None, *, keep_ray: bool = False) -> None:
    """Stop the groups and flush the history, then take Serve down (and the local Ray with it,
    unless `keep_ray`: a shared test session or a cluster the ops team runs)."""
    if city is not None:
        for group in city.groups:
            group.stop.remote()
        try:
            ray.get(city.aggregator.flush.remote(), timeout=30)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            print(f"warning: the last history flush failed: {exc}")
    if keep_ray:
        serve.shutdown()
    else:
        ray.shutdown()
