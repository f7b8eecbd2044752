"""Reachability: the KBS URL written into init-data is how the KBS is really exposed.

Why: a guest reads exactly one URL, the one measured into its init-data, and has no other way
to find the KBS. If the Service does not answer there (a NodePort Kubernetes picked at random
while init-data says :30443, a LoadBalancer on another port, an in-cluster name guests of
another cluster cannot resolve), every workload fails attestation at start, long after
`pulumi up` said all was well. So the URL is checked against the Service at preview, naming
the key to fix; a provided certificate is checked to cover the URL's host (the guest's TLS
client verifies it against that name), when the program reads it.

The KBS image is the root of trust, so production pins it by digest (waiver
`unpinned-kbs-image` with a reason otherwise): a tag can be moved under the same name.

What cannot be separated: Trustee v0.21.0's KBS serves the attestation API, the admin API,
`/metrics` and `/healthz` from one actix `App` bound to every socket of
`[http_server] sockets` (trustee kbs/src/api_server.rs `server()`), so there is no port or
listener for `/metrics` alone, and a NetworkPolicy (L4) cannot tell paths apart. The admin
API is `DenyAll` on every Trustee coco deploys (components/trustee.py), so it refuses every
request whoever reaches it; `/metrics` stays readable by whoever reaches the KBS port
(docs/topologies.md "Limits").
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field

from components.config_types import Model

UNPINNED_KBS_IMAGE: Literal["unpinned-kbs-image"] = "unpinned-kbs-image"


class KbsIngress(Model):
    """An Ingress in front of the KBS Service, at the host of `coco:trustee.url` (port 443).

    TLS must pass through to the KBS: the guest pins the KBS's own certificate (cdh.toml), so
    a controller terminating TLS with another certificate fails every attestation. How a
    controller passes TLS through is its own annotation (ingress-nginx:
    `nginx.ingress.kubernetes.io/ssl-passthrough: "true"`, with the controller started with
    `--enable-ssl-passthrough`): give it in `annotations`.
    """

    class_name: str | None = Field(default=None, description="ingressClassName.")
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="The controller's TLS-passthrough annotations (see docs/topologies.md).",
    )


SERVICE_NAME = "kbs"
"""The KBS Service's name (components/trustee.py creates it)."""


def service_dns_names(namespace: str) -> list[str]:
    """Every name a pod can use for the KBS Service."""
    return [
        SERVICE_NAME,
        f"{SERVICE_NAME}.{namespace}",
        f"{SERVICE_NAME}.{namespace}.svc",
        f"{SERVICE_NAME}.{namespace}.svc.cluster.local",
    ]


def url_host_port(url: str) -> tuple[str, int]:
    """Host and port of an https URL (443 when the URL names none)."""
    parsed = urlparse(url)
    return parsed.hostname or "", parsed.port or 443


def certificate_covers(cert_pem: str, host: str) -> bool:
    """Whether the PEM certificate's subjectAltName covers `host` (a DNS name, wildcard of
    one label, or IP address), as the guest's TLS client checks it."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return ip in san.get_values_for_type(x509.IPAddress)
    wanted = host.lower().rstrip(".")
    for name in san.get_values_for_type(x509.DNSName):
        name = name.lower().rstrip(".")
        if name == wanted:
            return True
        if name.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == name[2:]:
            return True
    return False
