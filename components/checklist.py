"""`coco:checklist`: optional production checks a stack opts in to.

The mandatory checklist (stack_settings.py `Check`, the policy pack) applies to every production
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
  only once it renders), so there a set `imageSignatures` is the whole check
  (components/checks/signed_images.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.config_types import Model
from policies.image_policy import SIGNED_IMAGES_POLICY

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
