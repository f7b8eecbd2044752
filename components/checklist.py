"""`coco:checklist`: optional production checks a stack opts in to.

The mandatory checklist (settings.py `Check`, the policy pack) applies to every production
stack. Some controls are worth enforcing only once an organisation has the means (a signing
pipeline, keys): those are opt-in here, so production stacks that never asked for them keep
passing, and a stack that asks gets the same two gates as the mandatory ones: settings
validation refuses it at preview naming the key (waivable with a reasoned
`coco:waivers[].check`), and the policy pack's matching rule is switched on in the stack's
policy config (policies/pack/production.py `stack_policy_config`). Opting in is explicit, so
the settings refuse in every environment; the pack rule is mandatory in production and
advisory elsewhere, like the rest of the pack.

- `requireSignedImages` (waiver `unsigned-images`, pack rule `images-signature-verified`):
  every image of every confidential workload, coco's own (`coco:workloads`) and transformed
  (`coco:manifests`), is covered by an `imageSignatures` policy whose requirement for that
  image is a real signature check, as image-rs would look it up (policies/image_policy.py).
  A manifests source's policy needs every key for any image (its chart's images are known
  only once it renders), so there a set `imageSignatures` is the whole check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from components.config_types import Model
from components.guest_features import image_key_path, image_policy_path
from policies.image_policy import policy_problems, render_image_policy
from policies.pack.signatures import SIGNED_IMAGES_POLICY

if TYPE_CHECKING:
    from components.settings import Problem, StackSettings

SIGNED_IMAGES_WAIVER: Literal["unsigned-images"] = "unsigned-images"


class ChecklistSettings(Model):
    """Optional production checks; each is off unless the stack turns it on."""

    require_signed_images: bool = Field(
        default=False,
        description="Every image of every confidential workload must be covered by an "
        "imageSignatures policy (pack rule images-signature-verified; waiver unsigned-images).",
    )

    def opted_in_policies(self) -> list[str]:
        """The pack's optional rules this stack turned on."""
        return [SIGNED_IMAGES_POLICY] if self.require_signed_images else []


def opted_in(s: StackSettings, policy: str) -> bool:
    """Whether the stack turned on the optional pack rule `policy`."""
    return s.checklist is not None and policy in s.checklist.opted_in_policies()


_FIX = (
    "add imageSignatures.keys (the cosign public keys that signed its images, "
    "docs/guest-features.md), or waive 'unsigned-images' in coco:waivers with a reason"
)


def signed_images_problems(s: StackSettings) -> list[Problem]:
    """`requireSignedImages`: each image judged against the policy the program would render."""
    from components.settings import NAMESPACE, Problem

    if not opted_in(s, SIGNED_IMAGES_POLICY) or s.waived(SIGNED_IMAGES_WAIVER):
        return []
    on = f"{NAMESPACE}:checklist.requireSignedImages is on"
    problems: list[Problem] = []
    for i, w in enumerate(s.workloads):
        key = f"{NAMESPACE}:workloads[{i}]"
        if w.image_signatures is None:
            for where, name, image in w.image_keys():
                problems.append(
                    Problem(
                        f"{key}.{where}",
                        f"{on}, but workload {w.name!r} container {name!r} image {image!r} "
                        f"is verified by no signature policy: {_FIX}",
                    )
                )
            continue
        keys = [image_key_path(w.name, k.name) for k in w.image_signatures.keys]
        policy = render_image_policy(w.images, keys)
        for where, _, image in w.image_keys():
            for why in policy_problems(policy, [image]):
                problems.append(
                    Problem(
                        f"{key}.{where}",
                        f"{on}, but the policy {image_policy_path(w.name)} lets {why}",
                    )
                )
    for i, m in enumerate(s.manifests):
        key = f"{NAMESPACE}:manifests[{i}]"
        if m.image_signatures is None:
            problems.append(
                Problem(
                    f"{key}.imageSignatures",
                    f"{on}, but the workloads of manifests source {m.name!r} are verified by no "
                    f"signature policy: {_FIX}",
                )
            )
    return problems
