"""What an RTSP client sees of a camera, for the scenario's verify.

    rtsp_probe.py request METHOD URL   one RTSP request over a socket; prints the status code
    rtsp_probe.py frame URL            OpenCV (FFmpeg, RTSP over TCP) reads one frame; prints WxH

Credentials, when given, come from $RTSP_USERNAME / $RTSP_PASSWORD (basic authentication; for
`frame`, inserted percent-encoded into the URL). Exit 0 when the camera answered (any status) or a
frame was read, 1 otherwise.
"""

from __future__ import annotations

import base64
import os
import socket
import sys
from urllib.parse import quote, urlsplit


def request(method: str, url: str) -> int:
    parts = urlsplit(url)
    lines = [f"{method} {url} RTSP/1.0", "CSeq: 1", "User-Agent: ovms-camera-molecule"]
    if method == "DESCRIBE":
        lines.append("Accept: application/sdp")
    user, password = os.environ.get("RTSP_USERNAME"), os.environ.get("RTSP_PASSWORD")
    if user is not None and password is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    try:
        with socket.create_connection((parts.hostname, parts.port or 554), timeout=10) as conn:
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            reply = conn.recv(4096)
    except OSError as exc:
        print(f"no answer: {exc}")
        return 1
    status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    if not status.startswith("RTSP/1.0 "):
        print(f"not RTSP: {status!r}")
        return 1
    print(status.split(" ")[1])
    return 0


def frame(url: str) -> int:
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
    import cv2

    user, password = os.environ.get("RTSP_USERNAME"), os.environ.get("RTSP_PASSWORD")
    if user is not None and password is not None:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 15000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 15000]
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    try:
        ok, image = capture.read()
    finally:
        capture.release()
    if not ok or image is None:
        print("no frame")
        return 1
    print(f"{image.shape[1]}x{image.shape[0]}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "request":
        return request(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "frame":
        return frame(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
