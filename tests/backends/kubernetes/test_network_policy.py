"""deploy/job-networkpolicy.yaml: valid for every Kubernetes we support, selecting
the pods jobs get, and giving them the egress z2jh's defaults give notebooks."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.spec import JobSpec

from .test_manifests import K8S_VERSIONS

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "deploy" / "job-networkpolicy.yaml"
# The z2jh chart's values, kept next to the checkout (../shared/anchors).
Z2JH_VALUES = ROOT.parent / "shared" / "anchors" / "z2jh" / "values.yaml"
METADATA = "169.254.169.254"
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def policy() -> dict[str, Any]:
    return dict(yaml.safe_load(POLICY.read_text()))


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_policy_validates_strictly(version: str) -> None:
    kubernetes_validate.validate(policy(), version, strict=True)


def test_it_selects_job_pods_and_only_them() -> None:
    spec = JobSpec(script="/home/jovyan/x.py", name="x", user="jovyan", workdir="/home/jovyan", output="%j.out")
    pod = m.PodSettings(namespace="hub", image="img")
    labels = m.build_job(spec, "k3x9q", pod, m.JobOptions(), submitted="2026-11-21T21:40:00+00:00")["spec"]["template"][
        "metadata"
    ]["labels"]
    selector = policy()["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert "component" not in selector  # z2jh's singleuser policy selects notebooks by that; jobs lack it


def _reachable(address: str, port: int, protocol: str = "TCP") -> bool:
    """Whether the policy's ipBlock rules let a job pod reach ``address:port``."""
    ip = ipaddress.ip_address(address)
    for rule in policy()["spec"]["egress"]:
        ports = rule.get("ports")
        if ports and not any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports):
            continue
        for peer in rule.get("to") or []:
            block = peer.get("ipBlock")
            excepted = any(ip in ipaddress.ip_network(e) for e in (block or {}).get("except") or [])
            if block and ip in ipaddress.ip_network(block["cidr"]) and not excepted:
                return True
    return False


def test_its_egress_mirrors_z2jh_singleuser_defaults() -> None:
    if not Z2JH_VALUES.exists():
        pytest.skip(f"no z2jh chart values at {Z2JH_VALUES}")
    values = yaml.safe_load(Z2JH_VALUES.read_text())["singleuser"]
    rules = values["networkPolicy"]["egressAllowRules"]
    assert values["cloudMetadata"]["ip"] == METADATA
    assert _reachable(METADATA, 80) is rules["cloudMetadataServer"] is False
    assert _reachable(METADATA, 53, "UDP") is rules["dnsPortsCloudMetadataServer"] is True
    assert _reachable("8.8.8.8", 443) is rules["nonPrivateIPs"] is True
    for cidr in PRIVATE:
        inside = str(next(ipaddress.ip_network(cidr).hosts()))
        assert _reachable(inside, 5432) is rules["privateIPs"] is False
        assert _reachable(inside, 53, "UDP") is rules["dnsPortsPrivateIPs"] is True
    kube_system = [
        r for r in policy()["spec"]["egress"]
        if {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}} in r.get("to", [])
    ]  # fmt: skip
    assert bool(kube_system) is rules["dnsPortsKubeSystemNamespace"] is True
    assert {p["port"] for r in kube_system for p in r["ports"]} == {53}
    assert policy()["spec"]["ingress"] == []
