"""Private registries under guest pull: where the guest finds its pull credentials.

With guest pull the image is pulled inside the TEE by image-rs (in the confidential data
hub), so a Kubernetes imagePullSecret, which kubelet hands to the host's containerd, never
reaches it; and sending the guest's credentials through the host would show them to it. The
guest fetches them from the KBS after attestation instead, by the URI its measured init-data
names. Keys, as image-rs reads the `[image]` table of CDH's config (guest-components d4dce5c
`image-rs/src/config.rs` `ImageConfig`, embedded as `CdhConfig.image` in
`confidential-data-hub/hub/src/config/mod.rs`):

- `authenticated_registry_credentials_uri`: a `kbs:///repo/type/tag` URI of a Docker
  `config.json` (`{"auths": {"<registry>": {"auth": "<base64 user:password>"}}}`,
  `image-rs/src/auth/mod.rs` `DockerConfigFile`);
- `extra_root_certificates`: PEM roots trusted for registries with a private CA.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel

from components.vocabulary import is_resource_path, kbs_uri

_PEM_CERT = re.compile(
    r"\A-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?\Z"
)


class RegistryAccess(BaseModel):
    """How a workload's guest authenticates to its private registry."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    credentials_resource: str | None = None
    """KBS resource path (repo/type/tag) of the Docker config.json; a `coco:trustee.resources`
    entry whose readers are exactly the workloads that pull with it."""
    ca_certificates: list[str] = []
    """PEM root certificates of a registry with a private CA (`extra_root_certificates`)."""

    @field_validator("credentials_resource")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not is_resource_path(v):
            raise ValueError(f"{v!r} is not a KBS resource path: use repo/type/tag")
        return v

    @field_validator("ca_certificates")
    @classmethod
    def _pems(cls, v: list[str]) -> list[str]:
        for i, pem in enumerate(v):
            if not _PEM_CERT.match(pem.strip() + "\n"):
                raise ValueError(f"caCertificates[{i}] is not one PEM 'CERTIFICATE' block")
        return [pem.strip() + "\n" for pem in v]

    @property
    def credentials_uri(self) -> str | None:
        return kbs_uri(self.credentials_resource) if self.credentials_resource else None


def image_pull_entries(access: RegistryAccess | None) -> list[tuple[str, str | list[str]]]:
    """The `[image]` keys of cdh.toml for `access`, in a fixed order (empty: none)."""
    if access is None:
        return []
    entries: list[tuple[str, str | list[str]]] = []
    if access.credentials_uri is not None:
        entries.append(("authenticated_registry_credentials_uri", access.credentials_uri))
    if access.ca_certificates:
        entries.append(("extra_root_certificates", list(access.ca_certificates)))
    return entries


def check_docker_config(text: str, registries: Sequence[str] = ()) -> None:
    """Raise `ValueError` unless `text` is a Docker config.json image-rs can use (an `auths`
    object of `auth` = base64 `user:password` entries) covering every registry named."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from None
    auths = doc.get("auths") if isinstance(doc, Mapping) else None
    if not isinstance(auths, Mapping) or not auths:
        raise ValueError('needs an "auths" object: {"auths": {"<registry>": {"auth": ...}}}')
    for registry, entry in auths.items():
        auth = entry.get("auth") if isinstance(entry, Mapping) else None
        try:
            decoded = base64.b64decode(str(auth), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        if ":" not in decoded:
            raise ValueError(f'auths["{registry}"].auth must be base64 of "user:password"')
    missing = [r for r in registries if r not in auths]
    if missing:
        raise ValueError(f"no credentials for {', '.join(missing)}")
