"""The JupyterLab launcher entry of docs/web.md, for real: the snippet, as the
docs give it, is the config of a real Jupyter Server with the real
jupyter-server-proxy, at a z2jh user's base URL; the tile the proxy then
offers JupyterLab (``GET server-proxy/servers-info``, what its launcher
extension reads) opens, joined to that base URL as the extension joins it,
the service's page, in a new tab (the page refuses to be framed)."""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from conftest import wait_for

from kbatch_dask import settings

pytest.importorskip("jupyter_server_proxy")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "web.md"
HUB = "http://hub.example"


def launcher_snippet() -> str:
    """The python block of docs/web.md's "From JupyterLab" section."""
    section = DOCS.read_text().split("## From JupyterLab", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "docs/web.md: no python block under 'From JupyterLab'"
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


@pytest.fixture(params=["/user/alice/", "/jhub/user/alice/"], ids=["hub-at-root", "hub-under-a-base-url"])
def jupyter_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A real Jupyter Server configured with the docs' snippet; (its URL, base URL, token)."""
    base_url = str(request.param)
    config = tmp_path / "jupyter_server_config.py"
    # The proxy's own install enables it in its prefix's config; this venv may be another.
    config.write_text('c.ServerApp.jpserver_extensions = {"jupyter_server_proxy": True}\n' + launcher_snippet())
    token, port = secrets.token_hex(16), _free_port()
    env = {
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    argv = [sys.executable, "-m", "jupyter_server", f"--config={config}", "--ip=127.0.0.1", f"--port={port}"]
    argv += [f"--ServerApp.base_url={base_url}", f"--IdentityProvider.token={token}", "--no-browser", "--allow-root"]
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}{base_url}"
    try:
        wait_for(
            lambda: proc.poll() is not None or _get(f"{url}api/status", token)[0] == 200,
            timeout=60,
            what="the Jupyter Server to answer",
        )
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        yield url, base_url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_docs_launcher_entry_opens_the_services_page_in_a_new_tab(jupyter_server: tuple[str, str, str]) -> None:
    url, base_url, token = jupyter_server
    status, info = _get(f"{url}server-proxy/servers-info", token)
    assert status == 200, status
    (entry,) = [p for p in info["server_processes"] if p["name"] == "kbatch-dask"]
    launcher = entry["launcher_entry"]
    assert (launcher["enabled"], launcher["title"], entry["new_browser_tab"]) == (True, "Batch jobs", True)
    # JupyterLab's launcher opens `${base URL}${path_info}`, whose ".." the browser
    # removes as it does for path_info relative to the base URL (RFC 3986, 5.2).
    opened = urljoin(HUB + base_url, launcher["path_info"])
    hub_prefix = base_url.split("/user/", 1)[0]
    assert opened == f"{HUB}{hub_prefix}/services/{settings.load().service.name}/"
