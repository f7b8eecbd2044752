"""AWS side of peer pods: EKS (optional), the pod VMs' security group, and IRSA roles.

Sources, as checked:
- IAM actions: read in cloud-api-adaptor v0.22.0's own provider code
  (`src/cloud-providers/aws/provider.go`, `imds.go`), not only `docs/aws-irsa.md`, whose
  "Option B" list lacks nothing the adaptor needs but grants network-interface, Elastic IP
  and subnet/security-group lookups coco's settings never trigger (`NOT_GRANTED`), and whose
  cleanup-only list for peerpod-ctrl lacks `DescribeImages`/`DescribeInstanceTypes`, without
  which its provider never starts. Launch and terminate are scoped to instances carrying the
  stack's `TAGS`; everything to AWS_REGION.
- IRSA trust: same doc, step 2 (`sts:AssumeRoleWithWebIdentity`, `<issuer>:sub` =
  `system:serviceaccount:confidential-containers-system:cloud-api-adaptor`, `<issuer>:aud` =
  `sts.amazonaws.com`); the chart takes the role through
  `daemonset.serviceAccount.annotations."eks.amazonaws.com/role-arn"` and
  `resourceCtrl.serviceAccount.annotations` (step 4).
- Ports: the upstream EKS guide (confidentialcontainers.org `examples/aws-simple.md`) opens
  15150/tcp (agent-protocol-forwarder) and the VXLAN port from the VPC CIDR; here they are
  opened from the cluster's security group only, which is narrower than the VPC.
- `peer-pods-cm` keys: peerpods chart `providers/aws.yaml` (AWS_REGION, AWS_SG_IDS,
  AWS_SUBNET_ID, PODVM_AMI_ID, PODVM_INSTANCE_TYPE, TAGS, ...); secret keys AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY (cloud-providers `aws/manager.go`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi

if TYPE_CHECKING:
    # pulumi_aws is ~270 MB of generated code that mypy cannot load in any sane amount of
    # memory; its calls are typed as Any here and exercised by tests/test_peerpods.py.
    aws: Any
else:
    import pulumi_aws as aws

from components.peerpods.common import (
    IRSA_ANNOTATION,
    CloudSide,
    exec_kubeconfig,
    secret_config,
    split_cidr,
    subject,
)
from components.peerpods.settings import (
    ADAPTOR_SERVICE_ACCOUNT,
    CONTROLLER_SERVICE_ACCOUNT,
    FORWARDER_PORT,
    AwsPeerPods,
    PeerPodsCluster,
)

DESCRIBE_ACTIONS: tuple[str, ...] = (
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeAddresses",
)
"""What both the adaptor and peerpod-ctrl read (cloud-api-adaptor v0.22.0
`src/cloud-providers/aws/provider.go`): `NewProvider` calls `DescribeImages`
(`getDeviceNameAndSize`, as ROOT_VOLUME_SIZE defaults to 30) and `DescribeInstanceTypes`
(`updateInstanceTypeSpecList`), so a role without them never starts; `DeleteInstance` calls
`DescribeAddresses` (`deleteElasticIPforInstance`) before terminating. peerpod-ctrl builds
the same provider (`src/peerpod-ctrl/controllers/aws.go` imports it) and only deletes."""

NOT_GRANTED: tuple[str, ...] = (
    "ec2:DescribeInstances",
    "ec2:CreateNetworkInterface",
    "ec2:AttachNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:AllocateAddress",
    "ec2:AssociateAddress",
    "ec2:DisassociateAddress",
    "ec2:ReleaseAddress",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:AttachVolume",
    "ec2:DescribeVolumes",
)
"""In docs/aws-irsa.md's list but never called with coco's settings (provider.go v0.22.0):
network-interface actions only for `spec.MultiNic` (EXTERNAL_NETWORK_VIA_PODVM), Elastic IP
actions and `DescribeInstances` (their waiters) only with USE_PUBLIC_IP, volume actions only
for CSI volumes; subnet and security groups are given, not looked up (`imds.go`
`retrieveMissingConfig` reads IMDS only when they are missing)."""

DEFAULT_NODE_TYPE = "m5.xlarge"
IRSA_AUDIENCE = "sts.amazonaws.com"


def _arn(region: str, resource: str) -> str:
    return f"arn:aws:ec2:{region}:*:{resource}"


def adaptor_policy(
    region: str, tags: dict[str, str], ami: str, subnet: str, security_group: str
) -> dict[str, Any]:
    """The adaptor's IAM policy: launch and terminate only coco-tagged pod VMs.

    `RunInstances` is allowed on an instance only when the request tags it with this stack's
    TAGS (the adaptor sets them at launch, `CreateInstance` `TagSpecifications`), and only from
    the pinned pod-VM AMI into the pod-VM subnet and security group; `CreateTags` only as part
    of that launch; `TerminateInstances` only on instances carrying those tags.
    """
    request_tags = {f"aws:RequestTag/{k}": v for k, v in sorted(tags.items())}
    return {
        "Version": "2012-10-17",
        "Statement": [
            _describe_statement("PeerPodDescribe", region),
            {
                "Sid": "PeerPodLaunchTagged",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": _arn(region, "instance/*"),
                "Condition": {"StringEquals": request_tags},
            },
            {
                "Sid": "PeerPodLaunchFrom",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": [
                    f"arn:aws:ec2:{region}::image/{ami}",
                    _arn(region, f"subnet/{subnet}"),
                    _arn(region, f"security-group/{security_group}"),
                    _arn(region, "network-interface/*"),
                    _arn(region, "volume/*"),
                ],
            },
            {
                "Sid": "PeerPodTagOnLaunch",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": _arn(region, "instance/*"),
                "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            },
            _terminate_statement(region, tags),
        ],
    }


def controller_policy(region: str, tags: dict[str, str]) -> dict[str, Any]:
    """peerpod-ctrl's: start its provider, and terminate only coco-tagged pod VMs."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _describe_statement("PeerPodCleanupDescribe", region),
            _terminate_statement(region, tags),
        ],
    }


def _describe_statement(sid: str, region: str) -> dict[str, Any]:
    # Describe actions take no resource-level permissions; the region condition still holds.
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(DESCRIBE_ACTIONS),
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
    }


def _terminate_statement(region: str, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "Sid": "PeerPodTerminateTagged",
        "Effect": "Allow",
        "Action": "ec2:TerminateInstances",
        "Resource": _arn(region, "instance/*"),
        "Condition": {"StringEquals": {f"aws:ResourceTag/{k}": v for k, v in sorted(tags.items())}},
    }


def trust_policy(oidc_provider_arn: str, issuer_host: str, sub: str) -> dict[str, Any]:
    """Only this ServiceAccount's projected token, for STS, may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer_host}:sub": sub,
                        f"{issuer_host}:aud": IRSA_AUDIENCE,
                    }
                },
            }
        ],
    }


def _trust_json(
    oidc_arn: pulumi.Input[str], issuer_host: pulumi.Input[str], sub: str
) -> pulumi.Output[str]:
    return pulumi.Output.all(oidc_arn, issuer_host).apply(
        lambda a: json.dumps(trust_policy(a[0], a[1], sub))
    )


def _tags(environment: str) -> dict[str, str]:
    return {"managed-by": "coco", "coco-environment": environment}


class _Eks:
    """The created EKS cluster and what the rest of the module needs from it."""

    def __init__(
        self, name: str, cloud: AwsPeerPods, environment: str, opts: pulumi.ResourceOptions
    ) -> None:
        cc = cloud.cluster
        tags = _tags(environment)
        vpc, public, private = _eks_network(name, cloud, tags, opts)
        cluster_role, node_role, node_policies = _eks_roles(name, tags, opts)
        self.cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=cc.name,
            role_arn=cluster_role.arn,
            version=cc.kubernetes_version,
            vpc_config={
                "subnet_ids": [s.id for s in private + public],
                "endpoint_private_access": True,
                "endpoint_public_access": True,
            },
            access_config={
                "authentication_mode": "API",
                "bootstrap_cluster_creator_admin_permissions": True,
            },
            tags=tags,
            opts=opts,
        )
        self.node_group = _eks_node_group(
            name, cloud, self.cluster, node_role, private, node_policies, tags, opts
        )
        issuer = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer or "")
        self.oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=[IRSA_AUDIENCE],
            tags=tags,
            opts=opts,
        )
        self.issuer_host = issuer.apply(lambda url: url.removeprefix("https://"))
        self.vpc_id = vpc.id
        self.subnet_id = private[0].id
        self.cluster_security_group_id = self.cluster.vpc_config.apply(
            lambda c: c.cluster_security_group_id or ""
        )
        self.kubeconfig = _eks_kubeconfig(cc.name, cloud.region, self.cluster)


def _eks_network(
    name: str, cloud: AwsPeerPods, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> tuple[Any, list[Any], list[Any]]:
    """The cluster's VPC over two zones: (vpc, public subnets, private subnets). Nodes and
    pod VMs live in the private subnets: nothing on the internet can reach the tunnel
    ports, and pod VMs still pull images through the NAT gateway."""
    cc = cloud.cluster
    cidrs = split_cidr(cc.network_cidr, 4)
    zones = [f"{cloud.region}a", f"{cloud.region}b"]
    vpc = aws.ec2.Vpc(
        f"{name}-vpc",
        cidr_block=cc.network_cidr,
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={**tags, "Name": f"{cc.name}-vpc"},
        opts=opts,
    )
    public = [
        aws.ec2.Subnet(
            f"{name}-public-{i}",
            vpc_id=vpc.id,
            cidr_block=cidrs[i],
            availability_zone=zones[i],
            map_public_ip_on_launch=True,
            tags={**tags, "kubernetes.io/role/elb": "1"},
            opts=opts,
        )
        for i in range(2)
    ]
    private = [
        aws.ec2.Subnet(
            f"{name}-private-{i}",
            vpc_id=vpc.id,
            cidr_block=cidrs[2 + i],
            availability_zone=zones[i],
            tags={**tags, "kubernetes.io/role/internal-elb": "1"},
            opts=opts,
        )
        for i in range(2)
    ]
    _eks_routes(name, vpc, public, private, tags, opts)
    return vpc, public, private


def _eks_routes(
    name: str,
    vpc: Any,
    public: list[Any],
    private: list[Any],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> None:
    """Public subnets route to an internet gateway; private ones out through a NAT gateway
    in the first public subnet."""
    igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=opts)
    eip = aws.ec2.Eip(f"{name}-nat", domain="vpc", tags=tags, opts=opts)
    nat = aws.ec2.NatGateway(
        f"{name}-nat", allocation_id=eip.id, subnet_id=public[0].id, tags=tags, opts=opts
    )
    public_rt = aws.ec2.RouteTable(
        f"{name}-public",
        vpc_id=vpc.id,
        routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
        tags=tags,
        opts=opts,
    )
    private_rt = aws.ec2.RouteTable(
        f"{name}-private",
        vpc_id=vpc.id,
        routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
        tags=tags,
        opts=opts,
    )
    for i in range(2):
        aws.ec2.RouteTableAssociation(
            f"{name}-public-{i}", subnet_id=public[i].id, route_table_id=public_rt.id, opts=opts
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-private-{i}",
            subnet_id=private[i].id,
            route_table_id=private_rt.id,
            opts=opts,
        )


def _eks_roles(
    name: str, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> tuple[Any, Any, list[Any]]:
    """(cluster role, node role, the node role's policy attachments): the AWS-managed
    policies EKS requires of each, nothing more."""
    cluster_role = aws.iam.Role(
        f"{name}-cluster",
        assume_role_policy=json.dumps(_service_trust("eks.amazonaws.com")),
        tags=tags,
        opts=opts,
    )
    aws.iam.RolePolicyAttachment(
        f"{name}-cluster-policy",
        role=cluster_role.name,
        policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
        opts=opts,
    )
    node_role = aws.iam.Role(
        f"{name}-nodes",
        assume_role_policy=json.dumps(_service_trust("ec2.amazonaws.com")),
        tags=tags,
        opts=opts,
    )
    node_policies = [
        aws.iam.RolePolicyAttachment(
            f"{name}-nodes-{policy}",
            role=node_role.name,
            policy_arn=f"arn:aws:iam::aws:policy/{policy}",
            opts=opts,
        )
        for policy in (
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy",
            "AmazonEC2ContainerRegistryReadOnly",
        )
    ]
    return cluster_role, node_role, node_policies


def _eks_node_group(
    name: str,
    cloud: AwsPeerPods,
    cluster: Any,
    node_role: Any,
    private: list[Any],
    node_policies: list[Any],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> Any:
    """A fixed-size node group in the private subnets, once its role can run nodes."""
    cc = cloud.cluster
    return aws.eks.NodeGroup(
        f"{name}-nodes",
        cluster_name=cluster.name,
        node_role_arn=node_role.arn,
        subnet_ids=[s.id for s in private],
        instance_types=[cc.node_instance_type or DEFAULT_NODE_TYPE],
        ami_type="AL2023_x86_64_STANDARD",
        scaling_config={
            "desired_size": cc.node_count,
            "min_size": cc.node_count,
            "max_size": cc.node_count,
        },
        tags=tags,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=node_policies)),
    )


def _eks_kubeconfig(cluster_name: str, region: str, cluster: Any) -> pulumi.Output[str]:
    """A kubeconfig that gets its token from `aws eks get-token` (no key in it)."""
    return exec_kubeconfig(
        cluster_name,
        cluster.endpoint,
        cluster.certificate_authority.apply(lambda ca: ca.data or ""),
        {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": [
                "eks",
                "get-token",
                "--cluster-name",
                cluster_name,
                "--region",
                region,
                "--output",
                "json",
            ],
        },
    )


def _service_trust(service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }


def build(
    name: str,
    cloud: AwsPeerPods,
    settings: PeerPodsCluster,
    environment: str,
    parent: pulumi.Resource,
) -> CloudSide:
    """Create the AWS resources pod VMs need, and describe them to the adaptor."""
    provider = aws.Provider(
        f"{name}-aws", region=cloud.region, opts=pulumi.ResourceOptions(parent=parent)
    )
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    tags = _tags(environment)
    place = _placement(name, cloud, environment, opts)
    podvm_sg, rules = _podvm_security_group(name, cloud, settings, place, opts)
    ready: list[pulumi.Resource] = [*place.ready, *rules]
    region, ami = cloud.region, cloud.podvm_ami_id or ""
    policy = aws.iam.Policy(
        f"{name}-adaptor",
        description="cloud-api-adaptor: create and delete coco-tagged pod VMs",
        policy=pulumi.Output.all(place.subnet_id, podvm_sg.id).apply(
            lambda a: json.dumps(adaptor_policy(region, tags, ami, a[0], a[1]))
        ),
        tags=tags,
        opts=opts,
    )
    ctrl_policy = aws.iam.Policy(
        f"{name}-controller",
        description="peerpod-ctrl: delete leaked coco-tagged pod VMs",
        policy=json.dumps(controller_policy(region, tags)),
        tags=tags,
        opts=opts,
    )
    side = CloudSide(
        provider="aws",
        provider_configs={
            "AWS_REGION": cloud.region,
            "PODVM_AMI_ID": cloud.podvm_ami_id or "",
            "PODVM_INSTANCE_TYPE": cloud.instance_type,
            "AWS_SUBNET_ID": place.subnet_id,
            "AWS_SG_IDS": podvm_sg.id,
            "TAGS": ",".join(f"{k}={v}" for k, v in sorted(tags.items())),
        },
        kubeconfig=place.kubeconfig,
        ready=ready,
        outputs={
            "podVmSecurityGroupId": podvm_sg.id,
            "adaptorPolicyArn": policy.arn,
            "controllerPolicyArn": ctrl_policy.arn,
        },
    )
    if cloud.credentials == "irsa":
        _irsa(name, settings, place, {"adaptor": policy, "controller": ctrl_policy}, side, opts)
    else:
        assert cloud.access_key_id_from and cloud.secret_access_key_from
        side.secrets = {
            "AWS_ACCESS_KEY_ID": secret_config(cloud.access_key_id_from),
            "AWS_SECRET_ACCESS_KEY": secret_config(cloud.secret_access_key_from),
        }
    return side


@dataclass
class _Placement:
    """Where the pod VMs go and whom they trust: the created cluster's, or the given ones."""

    vpc_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    cluster_sg: pulumi.Input[str]
    tags: dict[str, str]
    kubeconfig: pulumi.Output[str] | None = None
    oidc_arn: pulumi.Input[str] | None = None
    issuer_host: pulumi.Input[str] | None = None
    ready: list[pulumi.Resource] = field(default_factory=list)


def _placement(
    name: str, cloud: AwsPeerPods, environment: str, opts: pulumi.ResourceOptions
) -> _Placement:
    """The EKS cluster when the stack creates it (the release waits for its node group);
    otherwise the VPC, subnet, security group and OIDC provider the settings name."""
    tags = _tags(environment)
    if cloud.cluster.create:
        eks = _Eks(name, cloud, environment, opts)
        return _Placement(
            eks.vpc_id,
            eks.subnet_id,
            eks.cluster_security_group_id,
            tags,
            eks.kubeconfig,
            eks.oidc.arn,
            eks.issuer_host,
            [eks.node_group],
        )
    assert cloud.vpc_id and cloud.subnet_id and cloud.cluster_security_group_id
    return _Placement(
        cloud.vpc_id,
        cloud.subnet_id,
        cloud.cluster_security_group_id,
        tags,
        oidc_arn=cloud.oidc_provider_arn,
        issuer_host=cloud.oidc_issuer_host,
    )


def _podvm_security_group(
    name: str,
    cloud: AwsPeerPods,
    settings: PeerPodsCluster,
    place: _Placement,
    opts: pulumi.ResourceOptions,
) -> tuple[Any, list[pulumi.Resource]]:
    """The pod VMs' own security group (and its rules): the tunnel ports, from the
    cluster's nodes only."""
    podvm_sg = aws.ec2.SecurityGroup(
        f"{name}-podvm",
        vpc_id=place.vpc_id,
        description="coco peer-pod VMs: VXLAN and agent forwarder from the cluster only",
        tags={**place.tags, "Name": f"{cloud.cluster.name}-podvm"},
        opts=opts,
    )

    rules = _tunnel_ingress(name, settings.vxlan_port, podvm_sg.id, place.cluster_sg, opts)
    rules.append(
        # Outbound stays open: pod VMs pull images and reach the KBS themselves.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-podvm-egress",
            security_group_id=podvm_sg.id,
            ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0",
            description="image pulls and Trustee",
            opts=opts,
        )
    )
    return podvm_sg, rules


def _tunnel_ingress(
    name: str,
    vxlan: int,
    podvm_sg: pulumi.Input[str],
    cluster_sg: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """VXLAN and the agent forwarder into the pod VMs from the cluster's nodes, and VXLAN
    back: the tunnel is two-way, pod VMs send VXLAN back to the node's adaptor."""
    ingress = (
        (
            "podvm-vxlan",
            podvm_sg,
            cluster_sg,
            "udp",
            vxlan,
            "VXLAN tunnel from the cluster's nodes",
        ),
        (
            "podvm-forwarder",
            podvm_sg,
            cluster_sg,
            "tcp",
            FORWARDER_PORT,
            "agent-protocol-forwarder from the cluster's nodes",
        ),
        ("nodes-vxlan", cluster_sg, podvm_sg, "udp", vxlan, "VXLAN tunnel from coco peer-pod VMs"),
    )
    return [
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-{suffix}",
            security_group_id=group,
            referenced_security_group_id=source,
            ip_protocol=protocol,
            from_port=port,
            to_port=port,
            description=description,
            opts=opts,
        )
        for suffix, group, source, protocol, port, description in ingress
    ]


def _irsa(
    name: str,
    settings: PeerPodsCluster,
    place: _Placement,
    policies: dict[str, Any],
    side: CloudSide,
    opts: pulumi.ResourceOptions,
) -> None:
    """IRSA: one role per ServiceAccount (the adaptor's, peerpod-ctrl's), each assumable
    only by that ServiceAccount's token and holding only its policy; the chart gets the
    role ARNs as ServiceAccount annotations, and the release waits for the attachments."""
    assert place.oidc_arn is not None and place.issuer_host is not None
    roles: dict[str, Any] = {}
    for role_name, sa in (
        ("adaptor", ADAPTOR_SERVICE_ACCOUNT),
        ("controller", CONTROLLER_SERVICE_ACCOUNT),
    ):
        sub = subject(settings.adaptor.namespace, sa)
        roles[role_name] = aws.iam.Role(
            f"{name}-{role_name}-irsa",
            assume_role_policy=_trust_json(place.oidc_arn, place.issuer_host, sub),
            description=f"IRSA role of {sub}",
            tags=place.tags,
            opts=opts,
        )
        side.ready.append(
            aws.iam.RolePolicyAttachment(
                f"{name}-{role_name}-irsa",
                role=roles[role_name].name,
                policy_arn=policies[role_name].arn,
                opts=opts,
            )
        )
    side.service_account_annotations = {IRSA_ANNOTATION: roles["adaptor"].arn}
    side.controller_service_account_annotations = {IRSA_ANNOTATION: roles["controller"].arn}
    side.outputs["adaptorRoleArn"] = roles["adaptor"].arn
