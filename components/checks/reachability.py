"""The KBS URL written into init-data against how the KBS Service is exposed, and the KBS
image pin (why: components/reachability.py)."""

from __future__ import annotations

from components.problems import Problem
from components.reachability import UNPINNED_KBS_IMAGE, service_dns_names, url_host_port
from components.stack_settings import StackSettings
from components.vocabulary import NAMESPACE, is_pinned


def reachability_problems(s: StackSettings) -> list[Problem]:
    """The init-data KBS URL against the KBS Service, and the KBS image pin."""
    if s.trustee_topology.remote_trustee:
        return []  # no Trustee here: the Trustee stack checks its own exposure
    t = s.trustee
    key = f"{NAMESPACE}:trustee"
    problems: list[Problem] = []
    host, port = url_host_port(t.service_url())
    if t.node_port is not None and t.service_type != "NodePort":
        problems.append(
            Problem(
                f"{key}.nodePort", f"nodePort is for serviceType NodePort, not {t.service_type}"
            )
        )
    if t.service_type == "NodePort":
        if t.node_port is None:
            problems.append(
                Problem(
                    f"{key}.nodePort",
                    f"serviceType NodePort without nodePort: Kubernetes picks a random port, "
                    f"while init-data sends guests to :{port}; set nodePort: {port}",
                )
            )
        elif t.node_port != port:
            problems.append(
                Problem(
                    f"{key}.url",
                    f"init-data sends guests to port {port}, but the KBS NodePort is "
                    f"{t.node_port}: make the URL's port and nodePort the same",
                )
            )
    elif t.service_type == "LoadBalancer" and port != t.port:
        problems.append(
            Problem(
                f"{key}.url",
                f"init-data sends guests to port {port}, but the KBS load balancer listens "
                f"on {t.port} (coco:trustee.port): make them the same",
            )
        )
    in_cluster = set(service_dns_names(t.namespace))
    if t.ingress is not None:
        if host in in_cluster:
            problems.append(
                Problem(
                    f"{key}.url",
                    f"{host!r} is the in-cluster Service name, not a host an Ingress serves: "
                    "set the URL to the Ingress host guests resolve",
                )
            )
        if port != 443:
            problems.append(
                Problem(
                    f"{key}.url",
                    f"an Ingress listens on 443, but init-data sends guests to port {port}: "
                    f"write the URL as https://{host}",
                )
            )
    elif t.service_type == "ClusterIP":
        if host not in in_cluster:
            problems.append(
                Problem(
                    f"{key}.url",
                    f"{host!r} is not a name of the ClusterIP KBS Service ("
                    f"{', '.join(sorted(in_cluster))}), so nothing exposes the KBS there: use "
                    "serviceType LoadBalancer or NodePort, or an ingress, for an outside address",
                )
            )
        elif port != t.port:
            problems.append(
                Problem(
                    f"{key}.url",
                    f"the KBS Service listens on {t.port} (coco:trustee.port), not {port}",
                )
            )
    if s.production and not is_pinned(t.image) and not s.waived(UNPINNED_KBS_IMAGE):
        problems.append(
            Problem(
                f"{key}.image",
                f"production pins the KBS image (the root of trust) by digest: {t.image!r} is "
                "a tag; mirror it and set name@sha256:<digest>, or waive "
                f"'{UNPINNED_KBS_IMAGE}' with a reason",
            )
        )
    return problems
