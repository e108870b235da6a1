"""``POST /jobs?dry-run=1``: what the service would create for a submission,
as the client prints it (``kbatch --backend hub --dry-run``).

The objects are the ones a submit builds after the same checks (validation,
policy, the user's server pod, the pod template); nothing is created, and
what a submit mints (the driver's credential, the job's hub token) is not
minted: those values are :data:`NOT_MINTED`. Every Secret value is redacted,
the user's own environment included: only the keys are shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kbatch_dask.backends.kubernetes.dry_run import redacted

NOT_MINTED = "<minted at submit>"


def dry_run_plan(
    first_use: Sequence[dict[str, Any]], objects: Sequence[dict[str, Any]], queued: bool
) -> dict[str, Any]:
    """The answer: ``{"objects": [...], "notes": [...]}``, the objects in the order the
    service creates them (``first_use``: the user's namespace and its RoleBinding, in
    per-user mode the first time), ``notes`` the comment lines the client prints above.

    >>> dry_run_plan([], [{"kind": "Secret", "data": {"K": "dg=="}}], False)["objects"]
    [{'kind': 'Secret', 'data': {'K': '<redacted>'}}]
    """
    resumed = (
        "by Kueue when its queue has quota"
        if queued
        else "by the service's queue when its dependency, a hold and the running-jobs limits allow, "
        "once the ConfigMap and Secret exist"
    )
    notes = [
        "kbatch --dry-run: the objects the kbatch-dask service would create for this submission. The Job is",
        f"created suspended and resumed {resumed} (those are owned by the Job). Secret values are",
        f"redacted here; the job's credential and hub token are minted only at submit (shown as {NOT_MINTED}).",
    ]
    if first_use:
        notes.append(f"Your namespace {first_use[0]['metadata']['name']} is created with your first job.")
    return {"objects": redacted([*first_use, *objects]), "notes": notes}
