"""A local address mapping that stands in for DNS: a KBS's real name resolves to 127.0.0.1.

The end-to-end tiers reach the KBS at exactly the host and port a workload's init-data names
(`https://kbs.tdx-prod.example.com:30443`), not at a `localhost` rewrite of it: the guest's
TLS check then runs against the name the certificate was issued for. No DNS server is
involved and nothing on the machine changes: `hosts_wrapper` returns an argv prefix that runs
a command in a private mount namespace (`unshare --mount`, propagation private by default)
whose `/etc/hosts` is bind-mounted from a file listing the names. Every resolver the
programs use reads it (glibc's `files` NSS source for Python and Rust's `getaddrinfo`). As
root that is a plain mount namespace; otherwise a user namespace maps the caller to root in
it (`--map-root-user`), which the kernel allows unprivileged where user namespaces are on.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

LOOPBACK = "127.0.0.1"


def hosts_wrapper(directory: Path, names: Iterable[str]) -> list[str]:
    """An argv prefix: run the command with `names` resolving to 127.0.0.1.

    Fails with what was tried when the mapping does not take (no `unshare`, user namespaces
    off), so a test never silently reaches another address."""
    wanted = sorted(set(names))
    hosts = directory / "hosts"
    hosts.write_text(
        f"{LOOPBACK}\tlocalhost\n::1\tlocalhost\n" + "".join(f"{LOOPBACK}\t{n}\n" for n in wanted)
    )
    os.chmod(hosts, 0o644)
    unshare = ["unshare", "--mount"]
    if os.geteuid() != 0:
        unshare = ["unshare", "--user", "--map-root-user", "--mount"]
    wrapper = [
        *unshare,
        "--",
        "sh",
        "-c",
        'mount --bind "$0" /etc/hosts && exec "$@"',
        str(hosts),
    ]
    for name in wanted:
        done = subprocess.run(
            [*wrapper, "getent", "ahostsv4", name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        first = done.stdout.split()[:1]
        if done.returncode != 0 or first != [LOOPBACK]:
            raise AssertionError(
                f"could not map {name} to {LOOPBACK} with {' '.join(wrapper[:-1])} <hosts>: "
                f"exit {done.returncode}, {done.stdout.strip()!r} {done.stderr.strip()!r}"
            )
    return wrapper
