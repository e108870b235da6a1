"""Realistic Job and Pod objects for seeding the fake API server in bulk.

They look like what a Kubernetes 1.33 cluster stores for a one-pod Job that ran
``python -m kbatch_dask.driver`` (controller labels, selector, ownerReferences,
conditions), so list parsing and state mapping are exercised on real shapes.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from kbatch_dask.procs import python_m

from .store import now_iso

JsonObj = dict[str, Any]
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def controller_labels(name: str, uid: str) -> dict[str, str]:
    """The labels the Job controller puts on a Job's pod template and pods."""
    return {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }


def condition(kind: str, reason: str, message: str, when: str) -> JsonObj:
    """One Job condition with status True."""
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": when,
        "lastTransitionTime": when,
    }


def job_conditions(outcome: str, when: str) -> list[JsonObj]:
    """Terminal Job conditions as Kubernetes ≥ 1.31 writes them (target first)."""
    if outcome == "Complete":
        message = "Reached expected number of succeeded pods"
        return [
            condition("SuccessCriteriaMet", "CompletionsReached", message, when),
            condition("Complete", "CompletionsReached", message, when),
        ]
    if outcome == "Failed":
        message = "Job has reached the specified backoff limit"
        return [
            condition("FailureTarget", "BackoffLimitExceeded", message, when),
            condition("Failed", "BackoffLimitExceeded", message, when),
        ]
    return []


def seeded_job(
    namespace: str, name: str, labels: dict[str, str], annotations: dict[str, str], outcome: str, image: str
) -> JsonObj:
    if outcome not in ("Complete", "Failed", "Running"):
        raise ValueError(f"outcome must be Complete, Failed or Running, not {outcome!r}")
    uid, now = str(uuid.uuid4()), now_iso()
    status: JsonObj = {"startTime": now, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}
    if outcome == "Running":
        status.update(active=1, ready=1)
    else:
        status.update(conditions=job_conditions(outcome, now))
        status["succeeded" if outcome == "Complete" else "failed"] = 1
        if outcome == "Complete":
            status["completionTime"] = now
    return {
        "kind": "Job",
        "apiVersion": "batch/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "creationTimestamp": now,
            "generation": 1,
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 0,
            "completionMode": "NonIndexed",
            "suspend": False,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
            "template": {
                "metadata": {"labels": {**labels, **controller_labels(name, uid)}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 60,
                    "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler",
                    "serviceAccountName": "default",
                    "securityContext": {},
                    "containers": [
                        {
                            "name": "driver",
                            "image": image,
                            "command": python_m("python", "kbatch_dask.driver"),
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }
                    ],
                },
            },
        },
        "status": status,
    }


def seeded_pod(job: JsonObj, outcome: str) -> JsonObj:
    meta = job["metadata"]
    name = f"{meta['name']}-{''.join(random.choices(_SUFFIX_ALPHABET, k=5))}"
    now = now_iso()
    container = job["spec"]["template"]["spec"]["containers"][0]
    state: JsonObj
    if outcome == "Running":
        phase, state = "Running", {"running": {"startedAt": now}}
    else:
        code = 0 if outcome == "Complete" else 1
        phase = "Succeeded" if code == 0 else "Failed"
        reason = "Completed" if code == 0 else "Error"
        state = {"terminated": {"exitCode": code, "reason": reason, "startedAt": now, "finishedAt": now}}
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now,
            "labels": dict(job["spec"]["template"]["metadata"]["labels"]),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {**job["spec"]["template"]["spec"], "nodeName": "fake-node"},
        "status": {
            "phase": phase,
            "startTime": now,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": f"docker.io/library/{container['image']}@sha256:{'0' * 64}",
                    "containerID": f"containerd://{uuid.uuid4().hex}",
                    "ready": outcome == "Running",
                    "started": outcome == "Running",
                    "restartCount": 0,
                    "state": state,
                }
            ],
        },
    }
