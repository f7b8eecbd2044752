"""Cross-checks of the guest features (sealed secrets, signed and encrypted images): every
resource they name exists, is the stack's, and goes only where it is used
(components/guest_features.py holds the models; docs/guest-features.md)."""

from __future__ import annotations

from components.guest_features import (
    IMAGE_POLICY_REPO,
    decryption_key_path,
    shadowed_runtime_mount,
)
from components.problems import Problem
from components.stack_settings import StackSettings
from components.vocabulary import NAMESPACE


def guest_problems(s: StackSettings) -> list[Problem]:
    """Cross-checks: every referenced resource exists, is the stack's, and goes only where used."""
    problems: list[Problem] = []
    resources = {r.path: r for r in s.trustee.resources}
    users: dict[str, set[str]] = {}
    decryption_users: dict[str, list[str]] = {}

    def check_resource(key: str, path: str, workload: str, what: str) -> None:
        r = resources.get(path)
        if r is None:
            problems.append(
                Problem(
                    key,
                    f"{what} {path!r} is not a resource in coco:trustee.resources (known: "
                    f"{', '.join(sorted(resources)) or 'none'}): declare it there with its "
                    "valueFrom so the stack holds its value",
                )
            )
            return
        if workload not in r.readers:
            problems.append(
                Problem(
                    key,
                    f"{what} {path!r}: add {workload!r} to that resource's readers, or the KBS "
                    "will not release it to this workload",
                )
            )
        users.setdefault(path, set()).add(workload)

    for i, w in enumerate(s.workloads):
        wkey = f"{NAMESPACE}:workloads[{i}]"
        for j, c in enumerate(w.containers):
            seen: set[str] = set()
            for k, var in enumerate(c.sealed_env):
                key = f"{wkey}.containers[{j}].sealedEnv[{k}]"
                if var.name in c.env or var.name in seen:
                    problems.append(
                        Problem(f"{key}.name", f"env var {var.name!r} is defined twice")
                    )
                seen.add(var.name)
                check_resource(f"{key}.sealedFrom", var.sealed_from, w.name, "sealed secret")
            paths: set[str] = set()
            for k, f in enumerate(c.sealed_files):
                key = f"{wkey}.containers[{j}].sealedFiles[{k}]"
                if f.path in paths:
                    problems.append(Problem(f"{key}.path", f"{f.path!r} is listed twice"))
                paths.add(f.path)
                if f.path in {x.directory for x in c.sealed_files}:
                    problems.append(
                        Problem(f"{key}.path", f"{f.path!r} is another sealed file's directory")
                    )
                shadowed = shadowed_runtime_mount(f.directory)
                if shadowed:
                    problems.append(
                        Problem(
                            f"{key}.path",
                            f"the directory {f.directory!r} would be mounted over or inside "
                            f"{shadowed!r}, which the runtime mounts itself: use a directory of "
                            "your own, e.g. /run/secrets/<name>",
                        )
                    )
                check_resource(f"{key}.sealedFrom", f.sealed_from, w.name, "sealed secret")
        # Images without digest under imageSignatures: the confidential-pod recipe's one rule
        # (components/confidential_pod.py `image_problem`), checked with the entry's template.
        for k, uri in enumerate(w.image_decryption_keys):
            key = f"{wkey}.imageDecryptionKeys[{k}]"
            try:
                path = decryption_key_path(uri)
            except ValueError as err:
                problems.append(Problem(key, str(err)))
                continue
            check_resource(key, path, w.name, "image decryption key")
            decryption_users.setdefault(path, []).append(w.name)
    for i, m in enumerate(s.manifests):
        for k, ref in enumerate(m.sealed_secrets):
            check_resource(
                f"{NAMESPACE}:manifests[{i}].sealedSecrets[{k}].sealedFrom",
                ref.sealed_from,
                m.name,
                "sealed secret",
            )
    for path, names in sorted(decryption_users.items()):
        if len(set(names)) > 1:
            problems.append(
                Problem(
                    f"{NAMESPACE}:workloads",
                    f"image decryption key {path!r} is listed by {', '.join(sorted(set(names)))}: "
                    "a layer key is granted to one workload only; encrypt each workload's "
                    "images with its own key",
                )
            )
    for i, r in enumerate(s.trustee.resources):
        if r.path.startswith(f"{IMAGE_POLICY_REPO}/"):
            problems.append(
                Problem(
                    f"{NAMESPACE}:trustee.resources[{i}].path",
                    f"the KBS repository {IMAGE_POLICY_REPO!r} is reserved for resources the "
                    "program generates: use another repo",
                )
            )
        used_by = users.get(r.path)
        if used_by is None:
            continue
        extra = sorted(set(r.readers) - used_by)
        if extra:
            problems.append(
                Problem(
                    f"{NAMESPACE}:trustee.resources[{i}].readers",
                    f"{r.path!r} is a sealed secret or image key of {', '.join(sorted(used_by))} "
                    f"but also readable by {', '.join(extra)}: remove those readers",
                )
            )
        if r.allow_unbound:
            problems.append(
                Problem(
                    f"{NAMESPACE}:trustee.resources[{i}].allowUnbound",
                    f"{r.path!r} is a sealed secret or image key: it must be bound to its readers",
                )
            )
    return problems


def sealed_users(s: StackSettings) -> list[str]:
    """Workloads with at least one sealed env var or file, and `coco:manifests` sources with
    `sealedSecrets` (they read the signing key)."""
    return sorted(
        {w.name for w in s.workloads for c in w.containers if c.sealed_env or c.sealed_files}
        | {m.name for m in s.manifests if m.sealed_secrets}
    )
