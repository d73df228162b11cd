"""A real RTSP server for the tests: GStreamer's gst-rtsp-server serving an H.264 MP4 in a loop.

Runs under the system Python (Debian's python3-gi and gir1.2-gst-rtsp-server-1.0; `make test`
installs them). Usage: rtsp_server.py PORT MOUNT CLIP.mp4
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(port: str, mount: str, clip: str) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( multifilesrc location="{clip}" loop=true ! qtdemux ! h264parse config-interval=-1 ! '
        "rtph264pay name=pay0 pt=96 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory(f"/{mount}", factory)
    server.attach(None)
    print(f"serving rtsp://127.0.0.1:{port}/{mount}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(*sys.argv[1:4])
