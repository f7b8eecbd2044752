"""Stack configuration in, validated `StackSettings` out, or every problem at once.

`parse` (and `load`, which reads the running program's config) is the one way to get settings:
the models check their own fields (components/stack_settings.py), then the checks that span
keys and read input files run (components/checks/), so a mistake in a stack file is caught
here, once, before a single resource is registered. Parsing never stops at the first problem:
users fix stack files in one pass, so `SettingsError` lists every problem with the exact config
key (`coco:workloads[0].runtimeClass`) and how to fix it.

Secret values (KBS resources, cloud credentials, provided TLS keys) never sit in the settings:
they name another config key (`valueFrom`), which the stack must hold as a Pulumi secret
(`pulumi config set --secret`), so plain text never reaches state or logs.

The models and the shared vocabulary are importable from here as well, for callers that
parse and then read the settings (`from components.settings import parse, StackSettings`).

`python -m components.settings --schema` prints the JSON Schema for editors.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from components.checks.cross import cross_checks
from components.config_types import KubernetesTarget as KubernetesTarget
from components.problems import MAX_SHOWN_PROBLEMS as MAX_SHOWN_PROBLEMS
from components.problems import Problem as Problem
from components.problems import SettingsError as SettingsError
from components.stack_settings import CHECK_TEXT as CHECK_TEXT
from components.stack_settings import TOP_LEVEL_KEYS as TOP_LEVEL_KEYS
from components.stack_settings import BareMetalCluster as BareMetalCluster
from components.stack_settings import Check as Check
from components.stack_settings import ClusterSettings as ClusterSettings
from components.stack_settings import ContainerResources as ContainerResources
from components.stack_settings import ContainerSettings as ContainerSettings
from components.stack_settings import Environment as Environment
from components.stack_settings import GpuOperator as GpuOperator
from components.stack_settings import GpuSettings as GpuSettings
from components.stack_settings import InitDataSettings as InitDataSettings
from components.stack_settings import KataInstall as KataInstall
from components.stack_settings import KbsResource as KbsResource
from components.stack_settings import StackSettings as StackSettings
from components.stack_settings import TlsSettings as TlsSettings
from components.stack_settings import TrusteeSettings as TrusteeSettings
from components.stack_settings import Waiver as Waiver
from components.stack_settings import WorkloadSettings as WorkloadSettings
from components.stack_settings import secret_refs as secret_refs
from components.vocabulary import NAMESPACE as NAMESPACE
from components.vocabulary import check_resource_path as check_resource_path
from components.vocabulary import full_key as full_key
from components.vocabulary import is_pinned as is_pinned
from components.yaml_input import value_problems


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = f"{NAMESPACE}:"
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("baremetal", "peerpods", "aws", "azure", "gcp") and i > 0:
            continue  # pydantic's discriminator tag, not a key the user wrote
        else:
            out += ("." if i > 0 else "") + part
    return out


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key: check its spelling against `python -m components.settings --schema`"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "union_tag_invalid":
            msg = f"{msg}; set it to one of the listed values"
        problems.append(Problem(_key_path(tuple(e["loc"])), msg))
    return problems


def parse(
    raw: Mapping[str, Any],
    *,
    is_secret: Callable[[str], bool] | None = None,
    stack: str | None = None,
) -> StackSettings:
    """Validate raw config (keys without the `coco:` prefix) into settings, or raise.

    `is_secret` tells whether a full config key (`coco:dbPassword`) is a secret in the stack;
    when given, every `...From` reference must name one.
    """
    data = {k: v for k, v in raw.items() if k in TOP_LEVEL_KEYS}
    # The input boundary first: values no Pulumi config or Kubernetes object can carry
    # (integers beyond int64, lone surrogates, non-string keys), whichever path they came by.
    found = value_problems(data)
    if found:
        raise SettingsError([Problem(f"{NAMESPACE}:{k}", m) for k, m in found], stack)
    try:
        settings = StackSettings.model_validate(data)
    except ValidationError as err:
        raise SettingsError(_pydantic_problems(err), stack) from None
    problems = cross_checks(settings, is_secret)
    if problems:
        raise SettingsError(problems, stack)
    return settings


def strip_namespace(config: Mapping[str, Any]) -> dict[str, Any]:
    """`{"coco:cluster": ...}` (a stack file's `config:`) -> `{"cluster": ...}`."""
    prefix = f"{NAMESPACE}:"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def load(stack: str | None = None) -> StackSettings:
    """Read and validate the `coco:` config of the running Pulumi program."""
    import pulumi
    from pulumi.runtime.config import is_config_secret

    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        # `environment` is a plain string in stack files; the rest are structured values.
        value = cfg.get(key) if key == "environment" else cfg.get_object(key)
        if value is not None:
            raw[key] = value
    return parse(raw, is_secret=is_config_secret, stack=stack or pulumi.get_stack())


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `coco:` config values, keyed as they appear in a stack file."""
    schema = StackSettings.model_json_schema(by_alias=True)
    schema["title"] = "coco stack configuration (keys under the `coco:` namespace)"
    return schema


def main(argv: list[str]) -> int:
    if argv[1:] == ["--schema"]:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
        return 0
    print("usage: python -m components.settings --schema", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
