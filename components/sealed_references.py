"""The Secret of signed references a workload's pods read their sealed values from.

One builder for `coco:workloads` (sealedEnv, sealedFiles) and `coco:manifests` (a chart's
sealedSecrets): the Secret holds `sealed.` references (policies/sealed.py), never a value, so
it is not secret to the host by design; it stays a Pulumi secret because each reference is a
signature over stack state. The CDH in the guest resolves each reference at the KBS, which
releases the value only to the reader's attested init-data.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from policies.sealed import seal


def sealed_references_secret(
    resource_name: str,
    *,
    name: str,
    namespace: str,
    workload: str,
    environment: str,
    references: Mapping[str, str],
    sealing_key_pem: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """The Secret `name` holding, under each key of `references`, the signed reference to the
    KBS resource path it maps to (keys sorted, so the same config gives the same object)."""
    refs = dict(sorted(references.items()))
    return k8s.core.v1.Secret(
        resource_name,
        metadata={
            "name": name,
            "namespace": namespace,
            "labels": labels.common(
                environment, labels.ROLE_WORKLOAD, **{labels.WORKLOAD: workload}
            ),
        },
        type="Opaque",
        string_data=sealing_key_pem.apply(
            lambda pem: {key: seal(path, pem) for key, path in refs.items()}
        ),
        opts=opts,
    )
