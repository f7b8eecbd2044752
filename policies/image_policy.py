"""The container image security policy (`policy.json`) the guest's image-rs enforces.

Format, as read in guest-components d4dce5c `image-rs/src/signature/policy/`:
- `mod.rs` `Policy {default: Vec<PolicyReqType>, transports: HashMap<String, scopes>}` where a
  scope maps an image identity to requirements; `requirements_for_image` looks up the
  transport (`docker`, the only one image-rs implements), then the full reference, then each
  parent namespace of the *expanded* repository name (`get_image_namespaces`:
  `registry/repo`, then its parents), then `""`, and falls back to `default`.
- `policy_requirement.rs` `PolicyReqType` tagged by `type`: `insecureAcceptAnything`,
  `reject`, `signedBy`, `sigstoreSigned`; `CosignParameters` `keyPath` / `keyData` /
  `signedIdentity`. `cosign/mod.rs` reads `keyPath` through the resource provider, so a
  `kbs:///repo/type/tag` keyPath is fetched from the KBS after attestation.
Every listed requirement of a scope must hold (all, not any), as in containers-policy.json.

coco's policy: `default` rejects, so an image the workload does not declare is refused even
if the host substitutes it; each declared image's repository requires every configured key.
"""

from __future__ import annotations

import json

from policies.sealed import kbs_uri

DEFAULT_REGISTRY = "docker.io"


def image_scope(image: str) -> str:
    """The repository name image-rs matches scopes against: registry/repository, expanded.

    `busybox@sha256:...` -> `docker.io/library/busybox` (as `get_image_namespaces` expands).
    """
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"{DEFAULT_REGISTRY}/{name}"
        if "/" not in name[len(DEFAULT_REGISTRY) + 1 :]:
            name = f"{DEFAULT_REGISTRY}/library/{name[len(DEFAULT_REGISTRY) + 1 :]}"
    return name


def render_image_policy(images: list[str], key_paths: list[str]) -> str:
    """policy.json: reject by default; each image's repository needs every key's signature."""
    if not key_paths:
        raise ValueError("an image policy needs at least one signature key")
    requirements = [{"type": "sigstoreSigned", "keyPath": kbs_uri(p)} for p in sorted(key_paths)]
    scopes = {image_scope(i): requirements for i in sorted(set(images))}
    policy = {"default": [{"type": "reject"}], "transports": {"docker": scopes}}
    return json.dumps(policy, indent=2, sort_keys=True) + "\n"
