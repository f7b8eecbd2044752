"""Deploy and destroy the `dev` stack through coco's embedding API.

    source scripts/env.sh
    python examples/embed_dev.py                       # state in $PULUMI_BACKEND_URL
    python examples/embed_dev.py --state-dir /tmp/s --render-dir /tmp/out

The dev stack runs the coco-dev runtime and renders its manifests to a folder, so this
needs no cluster: `up` writes the manifests (kata-deploy's included, from the local chart
scripts/setup.sh links), policies and init-data, `destroy` removes them again. The test
suite runs this file (tests/test_e2e_automation.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from automation import Backend, CocoDeploymentError, SettingsError, StackSpec, destroy, up
from components.settings import KubernetesTarget


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", help="local state backend (default: $PULUMI_BACKEND_URL)")
    parser.add_argument("--render-dir", help="render manifests here (default: the stack's out/dev)")
    args = parser.parse_args(argv)

    # The stack's typed settings and secrets (stacks/Pulumi.dev.yaml holds demoKey, encrypted
    # with the local-dev passphrase); DEMO_KEY, when set, replaces that secret's value.
    secrets = {"demoKey": os.environ["DEMO_KEY"]} if "DEMO_KEY" in os.environ else {}
    spec = StackSpec.from_stack("dev", secrets=secrets)
    if args.render_dir:  # settings are pydantic models: change them in Python, not YAML
        target = KubernetesTarget(render_dir=str(Path(args.render_dir).resolve()))
        spec = spec.model_copy(
            update={"settings": spec.settings.model_copy(update={"kubernetes": target})}
        )
    backend = Backend.local(args.state_dir) if args.state_dir else Backend()

    try:
        result = up(spec, backend=backend, on_output=print)
        assert result.outputs is not None
        print(result.summary())
        print("KBS:", result.outputs["kbsUrl"])
        print(
            "init-data digests:",
            {n: w["initdataDigest"] for n, w in result.outputs["workloads"].items()},
        )
        destroy(spec, backend=backend, on_output=print, remove=True)
    except SettingsError as err:  # nothing was deployed: fix the stack configuration
        print(err, file=sys.stderr)
        return 2
    except CocoDeploymentError as err:  # names the stack and the failing resources
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
