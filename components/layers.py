"""Two layers, two stacks: a platform stack (the cluster side) and a trust stack on top of it.

Why: in one stack, a workload edit or the regular certificate-renewal `up` re-plans the
cluster side (kata-deploy, the GPU Operator, RuntimeClasses), which changes rarely, needs
other rights, and is shared by several trust stacks. `coco:layer` splits them:

- `{kind: platform}`: `build_platform` only (components/stack.py), and exports what the trust
  stack needs: `kubernetes` (a Pulumi secret: the kubeconfig content and context, or the
  render folder), `runtimeClasses`, `hardware` and `attestationPlatforms`; for peer pods also
  `kbsTls` (a secret), because the adaptor's cluster-wide init-data pins the KBS certificate,
  so the platform stack issues it;
- `{kind: trust, platformStack: ...}`: reads those with `pulumi.StackReference`, checks that
  the platform offers the hardware and every runtime class its workloads use (before any
  Kubernetes object: the provider waits for the check), then `build_trust` (KBS TLS,
  workloads, Trustee) onto the platform's cluster;
- no `coco:layer`: the single stack, unchanged.

Both stacks carry the same `coco:cluster` (the trust stack validates its workloads against
it, statically, before anything runs); the reference proves at deploy time that the platform
stack really provides it. The trust stack's own `coco:kubernetes` wins when it names a
target (a render folder, a kubeconfig); otherwise it deploys with the platform's kubeconfig.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s

from components import tee, tokens
from components.kbs_render import certificate_names
from components.stack import (
    Platform,
    Stack,
    all_runtime_classes,
    build,
    build_platform,
    build_trust,
    hardware_dict,
    platform_of,
)
from components.stack_settings import BareMetalCluster, StackSettings, TrusteeSettings
from components.trustee import TrusteeTls

if TYPE_CHECKING:
    from components.external_trustee import ExternalZone
    from components.zones import ConfidentialZone, TrusteeZone

MUTABLE = {"enable_config_map_mutable": True, "enable_secret_mutable": True}
"""The same provider settings as components.stack._provider (in-place ConfigMap/Secret updates)."""


def kubernetes_export(settings: StackSettings) -> dict[str, str | None]:
    """Where the platform's cluster is: the kubeconfig *content* (so the trust stack needs no
    file on its machine), the context, or the render folder."""
    target = settings.kubernetes
    content = None
    if target.kubeconfig and not target.rendering:
        path = os.path.expanduser(target.kubeconfig)
        try:
            with open(path, encoding="utf-8") as f:
                content = f.read()
        except OSError as err:
            raise ValueError(f"coco:kubernetes.kubeconfig: cannot read {path}: {err}") from None
    return {"kubeconfig": content, "context": target.context, "renderDir": target.render_dir}


class ReferencedTls(TrusteeTls):
    """The KBS TLS identity a peer-pods platform stack issued, read back by the trust stack.

    Same attributes as `TrusteeTls` (URL and names from the trust stack's own settings,
    certificate and private key from the platform's `kbsTls` secret output), so the Trustee
    and the workloads take it unchanged; no key is made here.
    """

    def __init__(
        self,
        name: str,
        settings: TrusteeSettings,
        exported: pulumi.Output[Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        pulumi.ComponentResource.__init__(
            self, tokens.token("TrusteeTls"), name, None, tokens.options("TrusteeTls", opts)
        )
        self.url = settings.service_url()
        self.dns_names, self.ip_addresses = certificate_names(settings)
        self.certificate_pem = pulumi.Output.unsecret(exported.apply(lambda t: t["certificatePem"]))
        self.private_key_pem = pulumi.Output.secret(exported.apply(lambda t: t["privateKeyPem"]))
        self.register_outputs(
            {
                "url": self.url,
                "certificatePem": self.certificate_pem,
                "privateKeyPem": self.private_key_pem,
            }
        )


def build_platform_layer(settings: StackSettings) -> Platform:
    """The platform stack: the cluster side and the outputs the trust stack reads.

    Peer pods: the adaptor's cluster-wide init-data pins the KBS certificate, so this stack
    issues the KBS TLS identity too and hands it over (`kbsTls`, a secret) to the trust stack.
    """
    tls = None
    if not isinstance(settings.cluster, BareMetalCluster):
        tls = TrusteeTls("kbs", settings.trustee)
        pulumi.export(
            "kbsTls",
            pulumi.Output.secret(
                {
                    "url": tls.url,
                    "certificatePem": tls.certificate_pem,
                    "privateKeyPem": tls.private_key_pem,
                }
            ),
        )
    platform = build_platform(settings, tls)
    classes = pulumi.Output.from_input(platform.offered)
    pulumi.export("layer", "platform")
    pulumi.export("environment", settings.environment)
    kube: pulumi.Input[Any] = kubernetes_export(settings)
    if platform.kubeconfig is not None:  # a cluster this stack created
        kube = platform.kubeconfig.apply(lambda k: {"kubeconfig": k, "context": None})
    pulumi.export("kubernetes", pulumi.Output.secret(kube))
    pulumi.export("runtimeClasses", classes)
    pulumi.export("hardware", hardware_dict(settings.hardware))
    pulumi.export(
        "attestationPlatforms",
        classes.apply(lambda cs: {rc: platform_of(settings, rc) for rc in cs}),
    )
    return platform


def check_platform(
    platform_stack: str,
    exported_hardware: Mapping[str, Any] | None,
    exported_classes: Sequence[str] | None,
    hardware: tee.Hardware,
    needed: Sequence[str],
) -> None:
    """Raise when the platform stack does not provide what this trust stack's settings need."""
    where = f"coco:layer.platformStack ({platform_stack})"
    if exported_hardware is None or exported_classes is None:
        raise ValueError(
            f"{where} exports no hardware/runtimeClasses: is it a coco platform stack "
            "(coco:layer.kind: platform), and has it been deployed?"
        )
    mine = hardware_dict(hardware)
    if dict(exported_hardware) != mine:
        raise ValueError(
            f"{where} runs on {dict(exported_hardware)}, but this stack's coco:cluster declares "
            f"{mine}: use the same coco:cluster in both stacks"
        )
    missing = sorted(set(needed) - set(exported_classes))
    if missing:
        raise ValueError(
            f"{where} offers runtime classes {sorted(exported_classes)}, not {missing} that this "
            "stack's workloads use: add a workload of that class to the platform stack's "
            "settings and `up` it first"
        )


def _trust_provider(
    settings: StackSettings, reference: pulumi.StackReference, checked: pulumi.Output[Any]
) -> k8s.Provider:
    """The trust stack's provider, created only once the platform check passed."""
    target = settings.kubernetes

    def after(value: Any) -> pulumi.Output[Any]:
        return pulumi.Output.all(checked, value).apply(lambda a: a[1])

    if target.render_dir:
        return k8s.Provider("k8s", render_yaml_to_directory=after(target.render_dir), **MUTABLE)
    if target.kubeconfig:
        path = os.path.expanduser(target.kubeconfig)
        return k8s.Provider("k8s", kubeconfig=after(path), context=target.context, **MUTABLE)
    kube = reference.require_output("kubernetes")
    return k8s.Provider(
        "k8s",
        kubeconfig=after(kube.apply(lambda k: k.get("kubeconfig"))),
        context=kube.apply(lambda k: k.get("context")),
        **MUTABLE,
    )


def build_trust_layer(settings: StackSettings) -> Stack:
    """The trust stack: KBS TLS, workloads and Trustee on the platform stack's cluster."""
    layer = settings.layer
    if layer is None or layer.platform_stack is None:  # settings validation refuses it
        raise ValueError("coco:layer.platformStack: a trust stack names its platform stack")
    name = layer.platform_stack
    reference = pulumi.StackReference("platform", stack_name=name)
    classes = reference.get_output("runtimeClasses")
    needed = sorted(set(all_runtime_classes(settings).values()))
    checked = pulumi.Output.all(reference.get_output("hardware"), classes).apply(
        lambda a: check_platform(name, a[0], a[1], settings.hardware, needed)
    )
    provider = _trust_provider(settings, reference, checked)
    tls: TrusteeTls
    if isinstance(settings.cluster, BareMetalCluster):
        tls = TrusteeTls("kbs", settings.trustee)
    else:  # issued by the platform stack, whose adaptor pins it
        tls = ReferencedTls("kbs", settings.trustee, reference.require_output("kbsTls"))
    stack = build_trust(settings, tls, Platform(provider, [], classes))
    pulumi.export("layer", "trust")
    pulumi.export("platformStack", name)
    return stack


def build_stack(
    settings: StackSettings,
) -> Stack | Platform | TrusteeZone | ConfidentialZone | ExternalZone:
    """What the program builds: the single stack, one of the two layers, or one stack of a
    trusted zone split in separate stacks (components/zones.py)."""
    if settings.trustee_topology.kind == "external":
        from components.external_trustee import build_external

        return build_external(settings)
    role = settings.trustee_topology.role
    if role is not None:
        from components import zones

        if role == "trustee":
            return zones.build_trustee_zone(settings)
        return zones.build_confidential_zone(settings)
    if settings.layer is None:
        return build(settings)
    if settings.layer.kind == "platform":
        return build_platform_layer(settings)
    return build_trust_layer(settings)
