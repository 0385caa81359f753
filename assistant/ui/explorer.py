"""Google's Model Explorer, served locally, for the full graph: "Open in Model Explorer" in the app.

The app writes the session's graph as Model Explorer graph JSON (gnn.exporters.explorer) and gives a
link that opens it in Model Explorer's own web app (PyPI ``ai-edge-model-explorer``), which this module
starts once per process on a free loopback port (``python -m model_explorer --no_open_in_browser``).
It reads the file from this machine, so it listens on 127.0.0.1 only; it stops with the app.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from gnn.errors import MadError

_server: tuple[subprocess.Popen, int] | None = None
_lock = threading.Lock()
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _stop() -> None:
    if _server is not None and _server[0].poll() is None:
        _server[0].terminate()


def server(timeout: float = 60) -> int:
    """The port of this process's Model Explorer server, started on first use."""
    global _server
    with _lock:
        if _server is not None and _server[0].poll() is None:
            return _server[1]
        try:
            import model_explorer  # noqa: F401 - only to say clearly when it is missing
        except ImportError:
            raise MadError("Model Explorer is not installed: pip install ai-edge-model-explorer") from None
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "model_explorer", "--no_open_in_browser", "--host", HOST,
                                 "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://{HOST}:{port}/check_health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    proc.kill()
                    raise MadError("Model Explorer did not start") from None
                time.sleep(0.3)
        _server = (proc, port)
        atexit.register(_stop)
        return port


def url(path: str | os.PathLike) -> str:
    """A link that opens the Model Explorer graph JSON at ``path`` (an absolute path on this machine)."""
    data = json.dumps({"models": [{"url": os.path.abspath(path), "adapterId": "builtin_json"}]})  # graph JSON, not TFJS
    return f"http://{HOST}:{server()}/?data={urllib.parse.quote(data)}"
