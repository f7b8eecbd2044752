"""Guest-side security features of a workload: sealed secrets, signed images, encrypted images.

All three are enforced inside the TEE by guest-components (the Confidential Data Hub and its
image-rs), with keys and policies the KBS releases only to the workload's init-data digest.
This module holds their settings models; the cross-checks that refuse bad input at preview,
each naming the `coco:` key, are components/checks/guest.py; `components/stack.py` turns them
into KBS resources and `components/workload.py` into the pod spec, init-data and agent policy.
See docs/guest-features.md.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import Field, field_validator

from components.config_types import Model
from components.vocabulary import KBS_URI_PREFIX, ResourcePath, check_resource_path

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

IMAGE_POLICY_REPO = "coco"
"""KBS repository of the resources the program generates (policies, public keys)."""


class SealedEnvVar(Model):
    """An env var whose value the CDH unseals in the guest from a KBS resource."""

    name: str = Field(description="Environment variable name.")
    sealed_from: ResourcePath = Field(
        description="The KBS resource (repo/type/tag, declared in coco:trustee.resources) "
        "holding the value; the pod's Secret holds only a signed reference to it."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _ENV_NAME.match(v):
            raise ValueError(f"{v!r} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
        return v


UNSEAL_SKIPPED_SUFFIXES = ("resolv.conf", "termination-log", "hostname", "hosts", "serviceaccount")
"""kata-containers 4.1.0 `src/agent/src/rpc.rs` `is_sealed_secret_path`: a mount whose shared
source (`.../<cid>-<16 hex>-<last segment of mountPath>`) *ends with* one of these is never
unsealed, so a sealed file's directory may not end with one."""
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class SealedFile(Model):
    """A file the Kata agent unseals in the guest from a KBS resource (a Secret volume).

    kata-containers 4.1.0 `src/agent/src/rpc.rs` `cdh_handler_sealed_secrets` runs for every
    CreateContainer: each mount whose source is in the guest's shared dir
    (`is_sealed_secret_path`) goes to `confidential_data_hub/mod.rs` `unseal_file`, which
    reads every regular file (or symlink to one: kubelet's AtomicWriter layout) starting
    with `sealed.`, has the CDH unseal it, writes the value beside it as `<file>.unsealed` and
    points the entry's symlink there. The program mounts the file's directory from a Secret
    holding the sealed reference.
    """

    path: str = Field(
        description="Absolute path of the file in the container; its directory becomes a "
        "read-only Secret volume holding only this container's sealed files."
    )
    sealed_from: ResourcePath = Field(
        description="The KBS resource (repo/type/tag, declared in coco:trustee.resources) "
        "holding the value; the Secret holds only a signed reference to it."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        parts = v.split("/")
        if not v.startswith("/") or v.endswith("/") or len(parts) < 3:
            raise ValueError(
                f"{v!r}: give an absolute file path below a directory, e.g. /run/secrets/db/key "
                "(the directory is mounted as a Secret volume)"
            )
        if any(p in ("", ".", "..") for p in parts[1:]):
            raise ValueError(f"{v!r} has an empty, '.' or '..' segment")
        if not _FILE_NAME.match(parts[-1]) or parts[-1].startswith(".."):
            raise ValueError(
                f"{v!r}: the file name must be letters, digits, '_', '-', '.' and not start "
                "with '..' (kubelet's own entries)"
            )
        directory = v.rsplit("/", 1)[0]
        skipped = [x for x in UNSEAL_SKIPPED_SUFFIXES if directory.endswith(x)]
        if skipped:
            raise ValueError(
                f"{v!r}: the Kata agent never unseals a mount whose directory ends with "
                f"{skipped[0]!r} (kata 4.1.0 src/agent/src/rpc.rs is_sealed_secret_path): "
                "use another directory name"
            )
        return v

    @property
    def directory(self) -> str:
        return self.path.rsplit("/", 1)[0]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]


def public_key_problem(pem: str) -> str | None:
    """Why `pem` is not a public key cosign verifies with (ECDSA P-256/P-384, RSA, Ed25519)."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as err:
        return f"not a PEM public key ({err.__class__.__name__}): paste `cosign.pub`"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            return f"EC curve {key.curve.name} is not one sigstore verifies (P-256, P-384)"
        return None
    if isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        return None
    return f"{type(key).__name__} keys are not supported by sigstore verification"


class SignatureKey(Model):
    """A cosign public key that must have signed the workload's images."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)
    public_key: str = Field(description="PEM public key (cosign.pub).")

    @field_validator("public_key")
    @classmethod
    def _pem(cls, v: str) -> str:
        text = v.replace("\r\n", "\n").strip() + "\n"
        why = public_key_problem(text)
        if why:
            raise ValueError(why)
        return text


class ImageSignatures(Model):
    """Image signature verification by the guest's image-rs (sigstore / cosign keys)."""

    keys: list[SignatureKey] = Field(
        min_length=1, description="Every listed key must have signed each image."
    )

    @field_validator("keys")
    @classmethod
    def _unique(cls, v: list[SignatureKey]) -> list[SignatureKey]:
        names = [k.name for k in v]
        if len(set(names)) != len(names):
            raise ValueError("signature key names must be unique")
        return v


def image_key_path(workload: str, key: str) -> str:
    """KBS path of one of a workload's signature public keys."""
    return f"{IMAGE_POLICY_REPO}/{workload}-cosign/{key}"


def image_policy_path(workload: str) -> str:
    """KBS path of a workload's image security policy (policy.json)."""
    return f"{IMAGE_POLICY_REPO}/{workload}-image-policy/policy.json"


def decryption_key_path(uri: str) -> str:
    if not uri.startswith(KBS_URI_PREFIX):
        raise ValueError(f"{uri!r} is not a KBS key id: use kbs:///repo/type/tag")
    return check_resource_path(uri[len(KBS_URI_PREFIX) :])


def shadowed_runtime_mount(directory: str) -> str | None:
    """The runtime mount (policies/agent_container.py `CONTAINER_MOUNTS`) a volume at
    `directory` would cover or sit inside, None when it touches none."""
    from policies.agent_container import CONTAINER_MOUNTS

    for m in CONTAINER_MOUNTS:
        d = m.destination
        if directory == d or d.startswith(directory + "/") or directory.startswith(d + "/"):
            return d
    return None
