"""kbatch's config reader without dask gives what dask.config gives."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kbatch_dask import config

COMPARE = """
import json, sys
from kbatch_dask import config
keys = json.loads(sys.argv[1])
without_dask = {k: config.dask_get(k, "<unset>") for k in keys}
assert "dask" not in sys.modules, "reading config imported dask"
import dask.config
with_dask = {k: config.dask_get(k, "<unset>") for k in keys}
print(json.dumps([without_dask, with_dask]))
"""


def leaves(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        out += leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out


def test_config_without_dask_matches_dask_config(tmp_path: Path) -> None:
    root, user_dir, extra = tmp_path / "etc-dask", tmp_path / "home" / ".config" / "dask", tmp_path / "extra"
    for d in (root, user_dir, extra):
        d.mkdir(parents=True)
    (root / "site.yaml").write_text("kbatch:\n  backend: local\n  queue:\n    recent-hours: 12\n")
    (user_dir / "mine.yml").write_text("kbatch:\n  queue:\n    recent_hours: 48\n  dask: {workers: '1:4'}\n")
    (extra / "gw.json").write_text(json.dumps({"gateway": {"address": "http://gw:8000", "auth": {"type": "basic"}}}))
    (extra / "ignored.txt").write_text("kbatch: {backend: kubernetes}\n")
    inherited = {"kbatch": {"driver": {"kill-grace": 3}}}
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "DASK_ROOT_CONFIG": str(root),
        "DASK_CONFIG": str(extra),
        "DASK_KBATCH__LOCAL__CANCEL_TIMEOUT": "7",
        "DASK_KBATCH__EMBEDDED_GATEWAY__WORKER_MEMORY": "2.5",
        "DASK_KBATCH__HUB__JOB_TOKENS": "false",
        "DASK_GATEWAY__PUBLIC_ADDRESS": "/services/dask-gateway",
        "DASK_INTERNAL_INHERIT_CONFIG": base64.urlsafe_b64encode(json.dumps(inherited).encode()).decode(),
    }
    keys = ["kbatch." + k for k in leaves(config.load_yaml(config._DEFAULTS)["kbatch"])]
    keys += ["kbatch.queue.recent_hours", "kbatch.hub", "kbatch.nothing.here", "gateway.address", "gateway.auth.type"]
    keys += ["gateway.public-address", "gateway.proxy-address", "gateway.auth.kwargs"]
    proc = subprocess.run(
        [sys.executable, "-c", COMPARE, json.dumps(keys)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    without_dask, with_dask = json.loads(proc.stdout)
    assert without_dask == with_dask
    assert without_dask["kbatch.queue.recent-hours"] == 48 and without_dask["kbatch.backend"] == "local"
    assert without_dask["kbatch.local.cancel-timeout"] == 7 and without_dask["kbatch.driver.kill-grace"] == 3
    assert without_dask["gateway.address"] == "http://gw:8000" and without_dask["kbatch.dask.workers"] == "1:4"
    assert without_dask["kbatch.hub.job-tokens"] is False and without_dask["kbatch.nothing.here"] == "<unset>"


def test_environment_changes_are_seen_without_dask(monkeypatch: Any) -> None:
    monkeypatch.delitem(sys.modules, "dask.config", raising=False)  # as in a process without dask
    monkeypatch.setenv("DASK_KBATCH__QUEUE__LIVE_TIMEOUT", "0.25")
    assert config.get("queue.live-timeout") == 0.25
    monkeypatch.setenv("DASK_KBATCH__QUEUE__LIVE_TIMEOUT", "2")
    assert config.get("queue.live-timeout") == 2
