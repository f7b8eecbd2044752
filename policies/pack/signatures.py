"""`images-signature-verified`: the optional pack rule (coco:checklist.requireSignedImages).

Judged on the rendered objects only, so it holds for coco's own workloads and for
transformed ones (`coco:manifests`, a program's own objects through `Confidential`) alike:

1. the pod's init-data `cdh.toml` has `[image] image_security_policy_uri`, a `kbs:///`
   resource URI (image-rs `ImageConfig`; once `[image]` exists, the kernel command line the
   host controls is ignored, so the URI must be in measured init-data);
2. the KBS serves that resource from a public-resources ConfigMap (label role
   `kbs-resource`, key `policies.resource.public_resource_key`), and it is a `policy.json`
   image-rs parses;
3. for every container image of the pod, the requirement list image-rs would apply
   (`policies.image_policy.requirements_for_image`) verifies a signature: not empty (image-rs
   allows an image no requirement covers), not only `insecureAcceptAnything`; and every
   `kbs:///` key it names is served too (a key the KBS lacks fails every pull).

A policy kept in a secret resource cannot be read by the pack, so it is reported as unseen
rather than trusted.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from components import labels
from components.vocabulary import resource_path_of
from policies.image_policy import (
    SIGNATURE_TYPES,
    requirements_for_image,
    verification_gap,
)
from policies.image_policy import SIGNED_IMAGES_POLICY as SIGNED_IMAGES_POLICY
from policies.initdata import INITDATA_ANNOTATION, decode_annotation
from policies.pack.checks import Finding, StackResource
from policies.pack.objects import CONFIG_MAP, PodTemplate, confidential_pod, is_production, role
from policies.resource import public_resource_key

FIX = (
    "give the workload imageSignatures (coco:workloads[].imageSignatures or "
    "coco:manifests[].imageSignatures), or lower images-signature-verified in the "
    "organisation's policy exceptions"
)


def served_resources(resources: Sequence[StackResource]) -> dict[str, str]:
    """ConfigMap key -> value of every public KBS resource the stack serves."""
    out: dict[str, str] = {}
    for r in resources:
        if r.resource_type == CONFIG_MAP and role(r.props) == labels.ROLE_KBS_RESOURCE:
            data = r.props.get("data")
            if isinstance(data, Mapping):
                out.update({str(k): v for k, v in data.items() if isinstance(v, str)})
    return out


def image_policy_uri(pod: PodTemplate) -> tuple[str | None, str | None]:
    """(the `image_security_policy_uri` of the pod's init-data cdh.toml, why there is none)."""
    value = pod.annotations.get(INITDATA_ANNOTATION)
    if not isinstance(value, str) or not value:
        return None, f"no init-data ({INITDATA_ANNOTATION}): no image policy reaches the guest"
    try:
        doc = tomllib.loads(decode_annotation(value))
        data = doc.get("data")
        cdh_text = data.get("cdh.toml") if isinstance(data, Mapping) else None
        if not isinstance(cdh_text, str):
            return None, "init-data has no cdh.toml: image-rs gets no image security policy"
        cdh = tomllib.loads(cdh_text)
    except (ValueError, tomllib.TOMLDecodeError) as err:
        return None, f"init-data or its cdh.toml does not parse: {err}"
    image = cdh.get("image")
    uri = image.get("image_security_policy_uri") if isinstance(image, Mapping) else None
    if not isinstance(uri, str) or not uri:
        return None, (
            "init-data cdh.toml sets no [image] image_security_policy_uri: image-rs verifies no "
            "signature"
        )
    return uri, None


def _key_paths(requirements: list[Any]) -> list[str]:
    paths = []
    for r in requirements:
        if isinstance(r, Mapping) and r.get("type") in SIGNATURE_TYPES:
            path = resource_path_of(str(r.get("keyPath") or ""))
            if path:
                paths.append(path)
    return paths


def pod_problems(pod: PodTemplate, served: Mapping[str, str]) -> list[str]:
    """Why some image of `pod` can run without a verified signature (empty: none can)."""
    uri, why = image_policy_uri(pod)
    if uri is None:
        return [f"{why}: {FIX}"]
    path = resource_path_of(uri)
    if path is None:
        return [f"image_security_policy_uri {uri!r} is not a kbs:///repo/type/tag resource"]
    text = served.get(public_resource_key(path))
    if text is None:
        return [
            f"image policy {uri} is not among the KBS's public resources (ConfigMaps labelled "
            f"{labels.ROLE}={labels.ROLE_KBS_RESOURCE}): the pack cannot see what the guest "
            "would enforce"
        ]
    try:
        policy = json.loads(text)
    except ValueError as err:
        return [f"image policy {uri} is not JSON ({err}): image-rs would refuse every pull"]
    if not isinstance(policy, Mapping):
        return [f"image policy {uri} is not a JSON object"]
    problems = []
    for where, image in pod.images():
        if not isinstance(image, str):
            continue
        requirements = requirements_for_image(policy, image)
        gap = verification_gap(requirements)
        if gap:
            problems.append(f"{where} image {image!r} under {uri}: {gap}; {FIX}")
            continue
        missing = [p for p in _key_paths(requirements) if public_resource_key(p) not in served]
        if missing:
            problems.append(
                f"{where} image {image!r}: the signature key(s) {', '.join(missing)} named by "
                f"{uri} are not served by the KBS, so every pull would fail"
            )
    return problems


def images_signature_verified(resources: Sequence[StackResource]) -> list[Finding]:
    """Every confidential pod's images are covered by a signature-verifying image policy."""
    served = served_resources(resources)
    findings = []
    for r in resources:
        pod = confidential_pod(r.resource_type, r.props)
        if pod is None:
            continue
        production = is_production(r.resource_type, r.props)
        findings += [Finding(p, r.urn, production) for p in pod_problems(pod, served)]
    return findings
