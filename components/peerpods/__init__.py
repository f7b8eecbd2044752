"""Peer pods (`kata-remote`): the cloud-api-adaptor and the cloud side its pod VMs need."""
