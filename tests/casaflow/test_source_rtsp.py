"""A camera behind a real RTSP server (GStreamer's gst-rtsp-server) survives a server restart mid-stream:
it reports `retrying`, reconnects by itself and goes on, while another camera keeps delivering frames."""

import subprocess
import threading
import time
from pathlib import Path

import pytest

from casaflow.source import PyAVSource, RetryPolicy

SERVER = Path(__file__).resolve().parents[1] / "support" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def gst_rtsp_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    not gst_rtsp_available(), reason="gst-rtsp-server missing: `make test` installs it (scripts/install-test-services.sh)"
)


def start_server(port: int, clip: Path) -> subprocess.Popen:
    process = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(port), "cam", str(clip)], stdout=subprocess.PIPE, text=True)
    assert "serving" in process.stdout.readline()
    return process


class Reader(threading.Thread):
    def __init__(self, source: PyAVSource):
        super().__init__(daemon=True)
        self.source, self.frames = source, 0

    def run(self) -> None:
        for _ in self.source:
            self.frames += 1


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_camera_reconnects_after_server_restart_while_another_keeps_going(tiny_city):
    clip = tiny_city / "video" / "cam01.mp4"
    port = 18554 + int(time.time()) % 1000
    server = start_server(port, clip)
    live = PyAVSource("rtsp-cam", f"rtsp://127.0.0.1:{port}/cam", analysis_fps=5, hwaccel="none",
                      retry=RetryPolicy(initial_s=0.3, max_s=1.0), open_timeout_s=5, read_timeout_s=2)
    other = PyAVSource("file-cam", str(tiny_city / "video" / "cam02.mp4"), analysis_fps=5, realtime=True,
                       hwaccel="none")
    readers = [Reader(live), Reader(other)]
    for reader in readers:
        reader.start()
    try:
        assert wait_until(lambda: readers[0].frames >= 10, 20), live.state
        server.terminate()
        server.wait(5)
        assert wait_until(lambda: live.state.status in ("retrying", "connecting"), 10), live.state
        frames_other, frames_live = readers[1].frames, readers[0].frames
        time.sleep(2.0)
        assert readers[1].frames > frames_other + 5, "the other camera stalled"
        assert live.state.reason, "a retrying camera says why"
        server = start_server(port, clip)
        assert wait_until(lambda: readers[0].frames >= frames_live + 10, 30), live.state
        assert live.state.status == "live" and live.state.connections >= 2
    finally:
        live.close()
        other.close()
        server.terminate()
        server.wait(5)
