"""`coco:checklist.requireSignedImages`: every image of every confidential workload is
covered by a signature policy, judged against the policy the program would render
(components/checklist.py holds the setting and says why)."""

from __future__ import annotations

from components.checklist import SIGNED_IMAGES_WAIVER
from components.guest_features import image_key_path, image_policy_path
from components.problems import Problem
from components.stack_settings import StackSettings
from components.vocabulary import NAMESPACE
from policies.image_policy import SIGNED_IMAGES_POLICY, policy_problems, render_image_policy


def opted_in(s: StackSettings, policy: str) -> bool:
    """Whether the stack turned on the optional pack rule `policy`."""
    return s.checklist is not None and policy in s.checklist.opted_in_policies()


_FIX = (
    "add imageSignatures.keys (the cosign public keys that signed its images, "
    "docs/guest-features.md), or waive 'unsigned-images' in coco:waivers with a reason"
)


def signed_images_problems(s: StackSettings) -> list[Problem]:
    """`requireSignedImages`: each image judged against the policy the program would render."""
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
