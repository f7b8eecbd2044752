"""The numeric ranges the consumers of our values accept, so settings refuse the rest early.

Why: a value Kubernetes, Pulumi or an X.509 library refuses, found only mid-`up`, leaves a
half-applied stack (a `validityHours` of 10^100 failed after 11 resources were created).
Each bound is the consumer's own:

- user and group IDs: Kubernetes `IsValidUserID` / `IsValidGroupID`
  (k8s.io/apimachinery pkg/util/validation/validation.go: `0 <= id <= math.MaxInt32`),
  applied to `securityContext.runAsUser` / `runAsGroup` by pod validation;
- ports: `IsValidPortNum` in the same file (`1 <= port <= 65535`);
- certificate validity: the certificate's notAfter is a UTC date (X.509 GeneralizedTime,
  and Python's `datetime` ends at year 9999); we bound it at 100 years, far inside both
  and far beyond any sensible rotation;
- every other integer: int64, which is what Pulumi config values decode into (Go
  `int64`/`float64`; a larger one came back as `-9.2e18`), checked for every value by
  `components.yaml_input.value_problems`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

INT32_MAX = 2**31 - 1
"""Largest Unix user/group ID Kubernetes accepts (math.MaxInt32)."""

MAX_VALIDITY_HOURS = 100 * 366 * 24
"""100 years: a bound on certificate lifetimes, well inside X.509 and `datetime`."""

Port = Annotated[int, Field(ge=1, le=65535)]
"""A TCP/UDP port number as Kubernetes validates it (`IsValidPortNum`)."""
