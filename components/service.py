"""A Service in front of a confidential workload's pods.

A Service only routes packets: kube-proxy and the node forward them to the pod VM, so the
host sees every byte that is not encrypted end to end. That is why the docs
(docs/workloads.md) ask for TLS terminated inside the TEE, with a key the workload gets from
the KBS after attestation; the Service itself carries no trust.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config_types import Model


class ServicePort(Model):
    port: int = Field(ge=1, le=65535, description="The Service's port.")
    target_port: int | None = Field(
        default=None, ge=1, le=65535, description="The container port (default: `port`)."
    )
    name: str | None = None
    node_port: int | None = Field(default=None, ge=30000, le=32767)


class ServiceSettings(Model):
    """`coco:workloads[].service`: how other pods (or clients outside) reach the workload."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    ports: list[ServicePort] = Field(min_length=1)

    @model_validator(mode="after")
    def _node_ports(self) -> ServiceSettings:
        if self.type == "ClusterIP" and any(p.node_port for p in self.ports):
            raise ValueError("nodePort needs type NodePort or LoadBalancer")
        names = [p.name for p in self.ports]
        if len(self.ports) > 1 and (None in names or len(set(names)) != len(names)):
            raise ValueError("a Service with several ports needs a unique name for each")
        return self


def service_spec(settings: ServiceSettings, selector: dict[str, str]) -> dict[str, object]:
    """The Service spec (Kubernetes field names) selecting the workload's pods."""
    ports = []
    for p in settings.ports:
        port: dict[str, object] = {
            "port": p.port,
            "targetPort": p.target_port or p.port,
            "protocol": "TCP",
        }
        if p.name:
            port["name"] = p.name
        if p.node_port:
            port["nodePort"] = p.node_port
        ports.append(port)
    return {"type": settings.type, "selector": dict(selector), "ports": ports}
