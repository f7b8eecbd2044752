"""PeerPods: the cloud-api-adaptor on a cluster, and the cloud side its pod VMs need.

`kata-remote` pods are not sandboxes on the node: the adaptor on each node asks the cloud for
a confidential VM per pod, and tunnels the pod's network (VXLAN) and the Kata agent protocol
(agent-protocol-forwarder, 15150/tcp) to it. So a working peer-pods cluster is the adaptor
*plus* cloud plumbing: a network the VMs join, firewall rules for the tunnel, an identity
allowed to create and delete VMs, the pod-VM image, a confidential instance type. This
component builds all of it from one `PeerPodsCluster`; the cloud part lives in one module per
cloud (`aws.py`, `azure.py`, `gcp.py`), imported here only for the cloud in use, so a stack
never loads an SDK it does not need.

Installation follows upstream (docs/charts.md, "Peer pods: how the adaptor is installed"): the
peerpods Helm chart
`oci://ghcr.io/confidential-containers/cloud-api-adaptor/charts/peerpods` (pinned; values
`provider`, `providerConfigs.<p>` -> ConfigMap `peer-pods-cm`, `secrets.mode`,
`daemonset.serviceAccount.annotations`, `daemonset.podLabels`, `resourceCtrl.*`, `webhook`,
`kata-deploy`: chart `values.yaml` and `templates/`), in `confidential-containers-system`, with
cert-manager for its webhook (jetstack chart, `crds.enabled=true`, as the upstream GCP guide
installs it).

Credentials never pass through Helm values: the chart's own `create` mode keeps
`providerSecrets` in the release history (chart `values.yaml` warns against it for
production) and renders each value into `"{{ $value }}"` unescaped, which breaks on JSON
such as GCP_CREDENTIALS. The component creates Secret `peer-pods-secret` itself from Pulumi
secrets and installs the chart with `secrets.mode: reference`; peerpod-ctrl reads the same
Secret name (peerpod-ctrl chart `templates/deployment.yaml`).

The default init-data (`INITDATA`, base64 of gzip of the TOML, cloud-api-adaptor
`docs/initdata.md` "Global initdata") points every pod VM without its own init-data at this
stack's Trustee.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, cast

import pulumi
import pulumi_kubernetes as k8s

from components import kata_chart, labels, tee, tokens
from components.cluster import drop_helm_hook
from components.confidential_pod import pod_initdata
from components.peerpods.common import NODE_LABEL, CloudSide, common_config, k8s_provider
from components.peerpods.render import cluster_view
from components.peerpods.settings import (
    AwsPeerPods,
    AzurePeerPods,
    GcpPeerPods,
    PeerPodsCluster,
    attestation_platform,
)
from policies.agent import render_agent_policy
from policies.initdata import KbsEndpoint, annotation_value

CREDENTIALS_SECRET = "peer-pods-secret"
"""The Secret both the adaptor (`secrets.existingSecretName`) and peerpod-ctrl read."""

ROLE_PEERPODS = "peerpods"
ROLE_CLOUD_CREDENTIALS = "cloud-credentials"
RUNTIME_CLASSES = ["kata-remote"]
NODE_LABELLER = "coco-node-labeller"
"""The labelling Job's ServiceAccount, ClusterRole and binding."""


class _CloudModule(Protocol):
    def build(
        self,
        name: str,
        cloud: Any,
        settings: PeerPodsCluster,
        environment: str,
        parent: pulumi.Resource,
    ) -> CloudSide: ...


def cloud_module(cloud: AwsPeerPods | AzurePeerPods | GcpPeerPods) -> _CloudModule:
    """The module for this cloud, imported on first use (it imports the cloud's SDK)."""
    return cast(_CloudModule, importlib.import_module(f"components.peerpods.{cloud.provider}"))


def default_initdata(
    settings: PeerPodsCluster, kbs_url: pulumi.Input[str], kbs_cert_pem: pulumi.Input[str]
) -> pulumi.Output[str]:
    """The cluster-wide default init-data document (TOML), pointing at this Trustee: the
    confidential-pod recipe's init-data step (components/confidential_pod.py), for pod VMs
    whose pod carries no init-data of its own."""
    spec = settings.adaptor.default_initdata
    policy = render_agent_policy(spec.agent_policy)
    algorithm = spec.algorithm
    return pulumi.Output.all(kbs_url, kbs_cert_pem).apply(
        lambda a: pod_initdata(KbsEndpoint(url=a[0], cert_pem=a[1]), policy, algorithm)
    )


def chart_values(
    settings: PeerPodsCluster, side: CloudSide, initdata: pulumi.Input[str]
) -> dict[str, Any]:
    """The peerpods chart values, keyed exactly as the pinned chart's `values.yaml`."""
    configs: dict[str, pulumi.Input[str]] = {
        **common_config(settings),
        **side.provider_configs,
        "INITDATA": initdata,
    }
    controller_annotations = (
        side.service_account_annotations
        if side.controller_service_account_annotations is None
        else side.controller_service_account_annotations
    )
    return {
        "provider": side.provider,
        "providerConfigs": {side.provider: dict(sorted(configs.items()))},
        "secrets": {
            "mode": "reference",
            "existingSecretName": CREDENTIALS_SECRET if side.secrets else "",
        },
        "daemonset": {
            "serviceAccount": {"annotations": side.service_account_annotations},
            "podLabels": side.pod_labels,
        },
        "resourceCtrl": {
            "enabled": side.resource_ctrl,
            "serviceAccount": {"annotations": controller_annotations},
            "podLabels": side.pod_labels,
        },
        "webhook": {"enabled": settings.adaptor.webhook},
        # The chart's own kata-deploy block disables shims by name, so every shim it does not
        # list (clh-runtime-rs, qemu-*-runtime-rs, ...) stays on. `disableAll` plus `remote`
        # installs only the shim peer pods use, and only its RuntimeClass `kata-remote`.
        "kata-deploy": {
            "enabled": settings.adaptor.install_kata,
            "shims": {"disableAll": True, "remote": {"enabled": True}},
        },
    }


class PeerPods(pulumi.ComponentResource):
    """The cloud-api-adaptor, its cloud side, and (optionally) the managed cluster itself."""

    provider: k8s.Provider | None
    """Kubernetes provider of the cluster this component created; None for a given cluster."""
    kubeconfig: pulumi.Output[str] | None
    """The created cluster's kubeconfig (a Pulumi secret); None for a given cluster."""
    runtime_classes: list[str]
    hardware: tee.Hardware
    attestation_platform: str
    """Trustee's verifier for the pod VMs' evidence (`snp`, `tdx`, `az-snp-vtpm`, ...)."""
    default_initdata: pulumi.Output[str]
    credentials: pulumi.Output[dict[str, str]] | None
    """The keys of `peer-pods-secret` (secret), None when the cloud identity is federated."""
    release: k8s.helm.v3.Release | k8s.helm.v3.Chart | None
    not_rendered: list[str]
    """In a render: what the deploying stack creates that the render does not (the cloud
    side, Helm releases, Secrets), each with what to do (components/peerpods/render.py)."""
    chart_values: pulumi.Output[Any] | None
    """In a render whose peerpods chart is not a local folder: the values to install it with."""

    def __init__(
        self,
        name: str,
        settings: PeerPodsCluster,
        environment: str,
        kbs_url: pulumi.Input[str],
        kbs_cert_pem: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        rendering: bool = False,
    ) -> None:
        """`rendering`: the cluster side only, as manifests (`coco:kubernetes.renderDir`);
        the cloud side is not created but listed in `not_rendered`."""
        super().__init__(tokens.token("PeerPods"), name, None, tokens.options("PeerPods", opts))
        self.runtime_classes = list(RUNTIME_CLASSES)
        self.hardware = settings.hardware
        self.attestation_platform = attestation_platform(settings.cloud)
        self.not_rendered = []
        self.chart_values = None
        self.credentials = None
        self._environment = environment
        self._namespace = settings.adaptor.namespace
        side, delivered = self._cloud_side(name, settings, environment, rendering)
        self.kubeconfig = side.kubeconfig
        self.provider = (
            k8s_provider(f"{name}-k8s", side.kubeconfig, self) if side.kubeconfig else None
        )
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=self.provider, depends_on=list(side.ready)
        )
        namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=self._meta(self._namespace, ROLE_PEERPODS, cluster_scoped=True),
            opts=k8s_opts,
        )
        in_ns = pulumi.ResourceOptions.merge(
            k8s_opts, pulumi.ResourceOptions(depends_on=[namespace])
        )
        # Everything the chart needs in place before it installs.
        before_chart: list[pulumi.Resource] = [namespace, *side.ready]
        before_chart += self._cert_manager(name, settings, rendering, k8s_opts)
        if side.secrets and not rendering:
            before_chart.append(self._credentials_secret(name, side.secrets, in_ns))
        if settings.adaptor.label_nodes and not side.nodes_labelled:
            before_chart.append(self._label_nodes(name, settings, in_ns))
        if side.system_priority_quota:
            before_chart.append(self._system_priority_quota(name, in_ns))

        self.default_initdata = default_initdata(settings, kbs_url, kbs_cert_pem)
        values = chart_values(settings, side, self.default_initdata.apply(annotation_value))
        if delivered:
            # The render creates no Secret, but the chart still reads the one delivered.
            values["secrets"]["existingSecretName"] = CREDENTIALS_SECRET
        if rendering:
            self.release = self._render_chart(settings, values, k8s_opts, before_chart)
            self._finish()
            return
        self.release = self._adaptor_release(name, settings, values, k8s_opts, before_chart)
        self._finish(side.outputs)

    def _meta(
        self, object_name: str, role: str, cluster_scoped: bool = False
    ) -> k8s.meta.v1.ObjectMetaArgs:
        """Metadata of one of the component's objects: in the adaptor's namespace unless
        cluster-scoped, with coco's labels."""
        return k8s.meta.v1.ObjectMetaArgs(
            name=object_name,
            namespace=None if cluster_scoped else self._namespace,
            labels=labels.common(self._environment, role),
        )

    def _cloud_side(
        self, name: str, settings: PeerPodsCluster, environment: str, rendering: bool
    ) -> tuple[CloudSide, dict[str, str]]:
        """The cloud side (and the keys of the credentials Secret a render leaves to the
        user's secret manager): built by the cloud's module when deploying; in a render,
        only the view of it the manifests need, the rest listed in `not_rendered`."""
        if not rendering:
            side = cloud_module(settings.cloud).build(
                name, settings.cloud, settings, environment, self
            )
            return side, {}
        view = cluster_view(settings, environment)
        self.not_rendered += view.not_rendered
        if view.secret_keys:
            self.not_rendered.append(
                f"Secret {settings.adaptor.namespace}/{CREDENTIALS_SECRET} (the adaptor's "
                "cloud credentials; the chart reads it by name): deliver it from your "
                "secret manager with "
                + ", ".join(f"{k} ({v})" for k, v in sorted(view.secret_keys.items()))
            )
        return view.side, view.secret_keys

    def _cert_manager(
        self,
        name: str,
        settings: PeerPodsCluster,
        rendering: bool,
        k8s_opts: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """cert-manager, when the stack installs it: the peerpods chart's webhook needs its
        certificates. A render lists it for the GitOps tool instead."""
        cm = settings.cert_manager
        if not cm.install:
            return []
        if rendering:
            self.not_rendered.append(
                f"cert-manager {cm.version} (Helm release cert-manager, chart {cm.chart} from "
                f"{cm.repository}, namespace {cm.namespace}, values crds.enabled: true): install "
                "it with your GitOps tool before the peerpods chart (its webhook's certificates)"
            )
            return []
        cm_ns = k8s.core.v1.Namespace(
            f"{name}-cert-manager-ns",
            metadata=self._meta(cm.namespace, ROLE_PEERPODS, cluster_scoped=True),
            opts=k8s_opts,
        )
        release = k8s.helm.v3.Release(
            f"{name}-cert-manager",
            name="cert-manager",
            chart=cm.chart,
            version=cm.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=cm.repository),
            namespace=cm.namespace,
            values={"crds": {"enabled": True}},
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[cm_ns])),
        )
        return [release]

    def _credentials_secret(
        self, name: str, secrets: dict[str, pulumi.Output[str]], in_ns: pulumi.ResourceOptions
    ) -> k8s.core.v1.Secret:
        """`peer-pods-secret` from Pulumi secrets (never through Helm values, see the module
        docstring); its keys are also the `credentials` output, a secret."""
        keys = sorted(secrets)
        self.credentials = pulumi.Output.secret(
            pulumi.Output.all(*[secrets[k] for k in keys]).apply(
                lambda vals: dict(zip(keys, vals, strict=True))
            )
        )
        return k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=self._meta(CREDENTIALS_SECRET, ROLE_CLOUD_CREDENTIALS),
            type="Opaque",
            string_data=secrets,
            opts=in_ns,
        )

    def _system_priority_quota(
        self, name: str, in_ns: pulumi.ResourceOptions
    ) -> k8s.core.v1.ResourceQuota:
        """A quota admitting system-priority pods in the adaptor's namespace: GKE only
        admits them in namespaces with a matching ResourceQuota."""
        return k8s.core.v1.ResourceQuota(
            f"{name}-system-priority",
            metadata=self._meta("allow-system-priority-classes", ROLE_PEERPODS),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(
                hard={"pods": "100"},
                scope_selector=k8s.core.v1.ScopeSelectorArgs(
                    match_expressions=[
                        k8s.core.v1.ScopedResourceSelectorRequirementArgs(
                            operator="In",
                            scope_name="PriorityClass",
                            values=["system-node-critical", "system-cluster-critical"],
                        )
                    ]
                ),
            ),
            opts=in_ns,
        )

    @staticmethod
    def _adaptor_release(
        name: str,
        settings: PeerPodsCluster,
        values: dict[str, Any],
        k8s_opts: pulumi.ResourceOptions,
        after: list[pulumi.Resource],
    ) -> k8s.helm.v3.Release:
        """The peerpods chart (adaptor, peerpod-ctrl, webhook) as a Helm release, once
        everything it reads is in place."""
        adaptor = settings.adaptor
        return k8s.helm.v3.Release(
            f"{name}-adaptor",
            name="peerpods",
            chart=adaptor.chart,
            version=adaptor.version,
            namespace=adaptor.namespace,
            create_namespace=False,
            values=values,
            timeout=900,
            opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=after)),
        )

    def _finish(self, extra: dict[str, Any] | None = None) -> None:
        self.register_outputs(
            {
                "runtimeClasses": self.runtime_classes,
                "attestationPlatform": self.attestation_platform,
                "kubeconfig": self.kubeconfig,
                "defaultInitdata": self.default_initdata,
                **(extra or {}),
            }
        )

    def _render_chart(
        self,
        settings: PeerPodsCluster,
        values: dict[str, Any],
        opts: pulumi.ResourceOptions,
        after: list[pulumi.Resource],
    ) -> k8s.helm.v3.Chart | None:
        """The peerpods chart as manifests (client-side `helm template`, release name
        `peerpods`, the deploy's values), from a local chart folder; Helm hooks dropped as
        for kata-deploy (components/cluster.py). A registry chart is left to the GitOps tool:
        listed, its values in `chart_values`."""
        adaptor = settings.adaptor
        if not kata_chart.is_local_chart(adaptor.chart):
            self.chart_values = pulumi.Output.from_input(values)
            self.not_rendered.append(
                f"the peerpods chart {adaptor.chart} {adaptor.version} (a registry chart): "
                f"install it as Helm release peerpods in namespace {adaptor.namespace} with "
                "the values of stack output peerpodsChartValues (written as "
                "peerpods-values.yaml by `python -m automation render`), or set "
                "coco:cluster.adaptor.chart to a local copy of the chart (`helm pull --untar`) "
                "to render it"
            )
            return None
        return k8s.helm.v3.Chart(
            "peerpods",
            k8s.helm.v3.LocalChartOpts(
                path=adaptor.chart,
                namespace=adaptor.namespace,
                values=values,
                transformations=[drop_helm_hook],
            ),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=after)),
        )

    def _label_nodes(
        self, name: str, settings: PeerPodsCluster, opts: pulumi.ResourceOptions
    ) -> k8s.batch.v1.Job:
        """Label the nodes the adaptor DaemonSet selects (`node.kubernetes.io/worker`).

        EKS and GKE refuse `*.kubernetes.io` labels in node-pool definitions, and an existing
        cluster's nodes are not ours to redefine, so a one-shot Job labels the nodes present
        at deploy time (the upstream guides do the same with `kubectl label`). Nodes added
        later need the label too: re-run with `pulumi up --replace` on this Job.
        """
        rbac = self._node_labeller_rbac(name, opts)
        return k8s.batch.v1.Job(
            f"{name}-label-workers",
            metadata=self._meta("coco-label-workers", ROLE_PEERPODS),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=6,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels.common(self._environment, ROLE_PEERPODS)
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=NODE_LABELLER,
                        restart_policy="OnFailure",
                        # The runtime's default syscall filter, as every pod coco makes
                        # (components/hardening.py).
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")
                        ),
                        containers=[_node_labeller_container(settings.adaptor.kubectl_image)],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()
                            )
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=rbac)),
        )

    def _node_labeller_rbac(self, name: str, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """The labelling Job's identity: a ServiceAccount allowed to read and patch Nodes
        (cluster-wide, as Nodes are), and nothing else."""
        sa = k8s.core.v1.ServiceAccount(
            f"{name}-node-labeller", metadata=self._meta(NODE_LABELLER, ROLE_PEERPODS), opts=opts
        )
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-node-labeller",
            metadata=self._meta(NODE_LABELLER, ROLE_PEERPODS, cluster_scoped=True),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""], resources=["nodes"], verbs=["get", "list", "patch"]
                )
            ],
            opts=opts,
        )
        binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-node-labeller",
            metadata=self._meta(NODE_LABELLER, ROLE_PEERPODS, cluster_scoped=True),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=NODE_LABELLER
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="ServiceAccount", name=NODE_LABELLER, namespace=self._namespace
                )
            ],
            opts=opts,
        )
        return [sa, role, binding]


def _node_labeller_container(image: str) -> k8s.core.v1.ContainerArgs:
    """`kubectl label` on every node, as an unprivileged user on a read-only root."""
    return k8s.core.v1.ContainerArgs(
        name="label",
        image=image,
        command=["kubectl", "label", "nodes", "--all", f"{NODE_LABEL}=", "--overwrite"],
        # kubectl keeps a discovery cache under $HOME; the root filesystem stays read-only.
        env=[k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp")],
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
        # One kubectl call: small, fixed requests and limits (memory equal, as coco's pods).
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": "10m", "memory": "64Mi"},
            limits={"cpu": "200m", "memory": "64Mi"},
        ),
        security_context=k8s.core.v1.SecurityContextArgs(
            run_as_non_root=True,
            run_as_user=65532,
            run_as_group=65532,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        ),
    )
