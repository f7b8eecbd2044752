"""The container image security policy (`policy.json`) the guest's image-rs enforces.

Format, as read in guest-components d4dce5c `image-rs/src/signature/policy/`:
- `mod.rs` `Policy {default: Vec<PolicyReqType>, transports: HashMap<String, scopes>}` where a
  scope maps an image identity to requirements; `requirements_for_image` looks up the
  transport (`docker`, the only one image-rs implements), then the full reference, then each
  parent namespace of the *expanded* repository name (`get_image_namespaces`:
  `registry/repo`, then its parents, then `*.domain` wildcards), then `""`, and falls back to
  `default`. `signature/mod.rs` `check_image_signature`: an *empty* requirement list allows
  the image, so "covered" means a non-empty list with a signature requirement.
- `policy_requirement.rs` `PolicyReqType` tagged by `type`: `insecureAcceptAnything`,
  `reject`, `signedBy`, `sigstoreSigned`; `CosignParameters` `keyPath` / `keyData` /
  `signedIdentity`. `cosign/mod.rs` reads `keyPath` through the resource provider, so a
  `kbs:///repo/type/tag` keyPath is fetched from the KBS after attestation.
Every listed requirement of a scope must hold (all, not any), as in containers-policy.json.

coco's policy: `default` rejects, so an image the workload does not declare is refused even
if the host substitutes it; each declared image's repository requires every configured key.
`requirements_for_image` / `verification_gap` replay that lookup in Python, so the settings
check and the policy pack judge a policy by what image-rs would apply to each image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components.vocabulary import kbs_uri

SIGNED_IMAGES_POLICY = "images-signature-verified"
"""The policy pack's optional rule that every image is signature-verified
(policies/pack/signatures.py), which `coco:checklist.requireSignedImages` turns on."""
DEFAULT_REGISTRY = "docker.io"
DOCKER_TRANSPORT = "docker"
"""The only transport image-rs implements (`Image::transport_name`)."""
SIGNATURE_TYPES = frozenset({"sigstoreSigned", "signedBy"})
"""Requirement types that verify a signature (`policy_requirement.rs` `PolicyReqType`)."""


def parse_reference(image: str) -> tuple[str, str, str | None, str | None]:
    """(registry, repository, tag, digest) as oci-spec 0.10 `Reference::try_from` splits them
    (what image-rs's oci-client parses): a first component with `.` or `:`, or `localhost`, is
    the registry, else `docker.io` (and `library/` for a one-component name); no tag and no
    digest means tag `latest`."""
    name, _, digest = image.partition("@")
    tag: str | None = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        tag = last.split(":", 1)[1]
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DEFAULT_REGISTRY, name
        if "/" not in repository:
            repository = f"library/{repository}"
    if tag is None and not digest:
        tag = "latest"
    return registry, repository, tag, digest or None


def image_scope(image: str) -> str:
    """The repository name image-rs matches scopes against: registry/repository, expanded.

    `busybox@sha256:...` -> `docker.io/library/busybox` (as `get_image_namespaces` expands).
    """
    registry, repository, _, _ = parse_reference(image)
    return f"{registry}/{repository}"


def image_identity(image: str) -> str:
    """`Reference::whole()`: the full reference image-rs looks up first in a transport's scopes."""
    registry, repository, tag, digest = parse_reference(image)
    return f"{registry}/{repository}{f':{tag}' if tag else ''}{f'@{digest}' if digest else ''}"


def image_namespaces(image: str) -> list[str]:
    """image-rs `get_image_namespaces`: the repository, its parents up to the host, then
    wildcard domains of the host without its port (`*.example.com`, `*.com`)."""
    name = image_scope(image)
    out = [name]
    while "/" in name:
        name = name.rsplit("/", 1)[0]
        out.append(name)
    host = name.rsplit(":", 1)[0] if ":" in name else name
    while "." in host:
        host = host.split(".", 1)[1]
        out.append(f"*.{host}")
    return out


def requirements_for_image(policy: Mapping[str, Any], image: str) -> list[Any]:
    """The requirement list image-rs applies to `image` (`Policy::requirements_for_image`):
    the `docker` transport's scope for the full reference, else for the first matching
    namespace, else its `""` scope, else `default`."""
    scopes = policy.get("transports")
    docker = scopes.get(DOCKER_TRANSPORT) if isinstance(scopes, Mapping) else None
    if isinstance(docker, Mapping):
        for candidate in (image_identity(image), *image_namespaces(image), ""):
            if candidate in docker:
                return list(docker[candidate] or [])
    default = policy.get("default")
    return list(default) if isinstance(default, list) else []


def verification_gap(requirements: list[Any]) -> str | None:
    """Why a requirement list lets an image run without a verified signature, None when
    every pull of the image needs one.

    image-rs `check_image_signature` (signature/mod.rs): an empty list allows the image;
    otherwise every requirement must hold, so one `sigstoreSigned` or `signedBy` with a key
    makes the set verifying whatever else it lists; `reject` alone refuses the image.
    """
    if not requirements:
        return "no requirement applies, and image-rs allows an image no requirement covers"
    kinds = [r.get("type") if isinstance(r, Mapping) else None for r in requirements]
    for r in requirements:
        if not isinstance(r, Mapping) or r.get("type") not in SIGNATURE_TYPES:
            continue
        if r.get("keyPath") or r.get("keyData"):
            return None
    if "reject" in kinds:
        return "the policy rejects it outright (`reject`): the pod can never start"
    return f"its requirements ({', '.join(str(k) for k in kinds)}) verify no signature"


def policy_problems(policy_json: str, images: list[str]) -> list[str]:
    """Every image of `images` the policy (`policy.json` text) lets run unverified."""
    try:
        policy = json.loads(policy_json)
    except ValueError as err:
        return [f"policy.json is not JSON ({err}): image-rs refuses it and pulls nothing"]
    if not isinstance(policy, Mapping) or not isinstance(policy.get("default"), list):
        return ["policy.json has no `default` list: image-rs cannot parse it"]
    if not isinstance(policy.get("transports"), Mapping):
        return ["policy.json has no `transports` map: image-rs cannot parse it"]
    out = []
    for image in images:
        gap = verification_gap(requirements_for_image(policy, image))
        if gap:
            out.append(f"{image!r}: {gap}")
    return out


def render_image_policy(images: list[str], key_paths: list[str]) -> str:
    """policy.json: reject by default; each image's repository needs every key's signature."""
    if not key_paths:
        raise ValueError("an image policy needs at least one signature key")
    requirements = [{"type": "sigstoreSigned", "keyPath": kbs_uri(p)} for p in sorted(key_paths)]
    scopes = {image_scope(i): requirements for i in sorted(set(images))}
    policy = {"default": [{"type": "reject"}], "transports": {DOCKER_TRANSPORT: scopes}}
    return json.dumps(policy, indent=2, sort_keys=True) + "\n"


def render_any_image_policy(key_paths: list[str]) -> str:
    """policy.json for workloads whose images are not known when the program runs (a
    `coco:manifests` chart): every image, by `default`, needs every key's signature.
    `transports` is required by image-rs's `Policy` (no serde default), so it is rendered."""
    if not key_paths:
        raise ValueError("an image policy needs at least one signature key")
    requirements = [{"type": "sigstoreSigned", "keyPath": kbs_uri(p)} for p in sorted(key_paths)]
    policy = {"default": requirements, "transports": {DOCKER_TRANSPORT: {}}}
    return json.dumps(policy, indent=2, sort_keys=True) + "\n"
