"""Checks of the deploying machine, run by the program before any resource is registered.

Why not in settings validation: the example stack files name kubeconfig files that exist on
their operators' machines (`~/.kube/tdx-prod.yaml`), and `python -m automation validate` runs
anywhere (CI). The engine's machine is where the file must exist, so the program checks it
there, first: the Kubernetes provider would otherwise read a missing path as kubeconfig
*content* and fail with `cannot unmarshal string` and an unrelated hint.
"""

from __future__ import annotations

import os
from pathlib import Path

from components.config_types import KubernetesTarget
from components.vocabulary import NAMESPACE
from components.yaml_input import clip


def kubeconfig_problem(target: KubernetesTarget) -> str | None:
    """Why the kubeconfig the stack names cannot be used here, keyed; None when it can."""
    if target.rendering or target.kubeconfig is None or "\n" in target.kubeconfig:
        return None  # rendering, the ambient KUBECONFIG, or inline content the provider parses
    path = target.kubeconfig
    try:
        found = len(path) <= 4096 and "\0" not in path and Path(path).expanduser().is_file()
    except OSError:
        found = False
    if found:
        return None
    return (
        f"{NAMESPACE}:kubernetes.kubeconfig: no kubeconfig file at {clip(repr(path), 200)} on "
        f"this machine (working directory {os.getcwd()}): copy the cluster's kubeconfig there, "
        "give the path of an existing one (relative to the project folder, or absolute), or "
        "remove the key to use $KUBECONFIG / ~/.kube/config"
    )
