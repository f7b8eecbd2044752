"""Peer pods (`kata-remote`): the cloud-api-adaptor and the cloud side its pod VMs need.

- `settings`: the typed, validated configuration (no cloud SDK: `components.stack_settings` imports
  it for every stack, bare metal included).
- `component`: the `PeerPods` ComponentResource; imports the one cloud module it needs, lazily.
- `aws`, `azure`, `gcp`: one module per cloud, each importing only its own SDK.

Nothing is imported here, so importing the package costs nothing.
"""
