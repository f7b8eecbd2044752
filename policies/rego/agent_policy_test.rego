# Allow/deny cases for the generated agent policy, run with `opa test`.
#
# tests/test_agent_policy.py renders policies/agent.py for the fixture spec
#   AgentPolicySpec(allowed_images=[app_image])   (restrictive, no exec, no logs)
# into a temporary directory next to this file and runs `opa test` on both.
# Request inputs follow the shapes genpolicy's rules.rego reads (input.OCI.Annotations,
# input.storages, input.process.Args, input.path) and the guest-pull storage the Kata runtime
# builds (virtcontainers/kata_agent.go handleImageGuestPullBlockVolume).
package agent_policy_test

import rego.v1

import data.agent_policy

app_image := "ghcr.io/acme/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

evil_image := "ghcr.io/evil/miner@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

sandbox_id := "1f8e4b7c3a2d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7"

container_id := "9c2d7e1f0a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"

guest_pull(cid, source, ctype) := {
	"driver": "image_guest_pull",
	"driver_options": [concat("", ["image_guest_pull={\"metadata\":{\"io.kubernetes.cri.container-type\":\"", ctype, "\"}}"])],
	"source": source,
	"fstype": "overlay",
	"options": [],
	"mount_point": concat("/", ["/run/kata-containers", cid, "rootfs"]),
	"fs_group": null,
}

create_input(cid, ctype, image_name, storages) := {
	"container_id": cid,
	"exec_id": cid,
	"string_user": null,
	"devices": [],
	"storages": storages,
	"sandbox_pidns": false,
	"shared_mounts": [],
	"OCI": {
		"Version": "1.1.0",
		"Annotations": {
			"io.kubernetes.cri.container-type": ctype,
			"io.kubernetes.cri.image-name": image_name,
			"io.kubernetes.cri.sandbox-id": sandbox_id,
			"io.kubernetes.cri.sandbox-name": "app-7d9c-xk2lp",
			"io.kubernetes.cri.sandbox-namespace": "default",
			"io.katacontainers.pkg.oci.container_type": "pod_container",
		},
		"Hooks": null,
		"Root": {"Path": concat("/", ["/run/kata-containers", cid, "rootfs"]), "Readonly": false},
		"Process": {"Args": ["/app/server", "--port=8080"], "Cwd": "/", "Env": ["PATH=/usr/bin"]},
		"Mounts": [],
	},
}

app_container := create_input(container_id, "container", app_image, [guest_pull(container_id, app_image, "container")])

pause_sandbox := create_input(sandbox_id, "sandbox", "registry.k8s.io/pause:3.10", [guest_pull(sandbox_id, "pause", "sandbox")])

test_listed_image_allowed if {
	agent_policy.CreateContainerRequest with input as app_container
}

test_sandbox_with_builtin_pause_allowed if {
	agent_policy.CreateContainerRequest with input as pause_sandbox
}

test_unlisted_image_denied if {
	not agent_policy.CreateContainerRequest with input as create_input(
		container_id, "container", evil_image,
		[guest_pull(container_id, evil_image, "container")],
	)
}

test_listed_name_but_other_pull_source_denied if {
	not agent_policy.CreateContainerRequest with input as create_input(
		container_id, "container", app_image,
		[guest_pull(container_id, evil_image, "container")],
	)
}

test_sandbox_pulling_a_real_image_denied if {
	not agent_policy.CreateContainerRequest with input as create_input(
		container_id, "sandbox", evil_image,
		[guest_pull(container_id, evil_image, "sandbox")],
	)
}

test_container_without_guest_pull_denied if {
	not agent_policy.CreateContainerRequest with input as create_input(container_id, "container", app_image, [])
}

test_oci_hooks_denied if {
	hooked := json.patch(app_container, [{"op": "replace", "path": "/OCI/Hooks", "value": {"Prestart": [{"Path": "/bin/sh"}]}}])
	not agent_policy.CreateContainerRequest with input as hooked
}

test_exec_denied if {
	not agent_policy.ExecProcessRequest with input as {
		"container_id": container_id,
		"exec_id": "e1",
		"string_user": null,
		"process": {"Args": ["/bin/sh", "-c", "cat /proc/self/environ"], "Terminal": false},
	}
}

test_set_policy_denied if {
	not agent_policy.SetPolicyRequest with input as {"policy": "package agent_policy\ndefault ExecProcessRequest := true\n"}
}

test_logs_denied if {
	not agent_policy.ReadStreamRequest with input as {"container_id": container_id, "exec_id": container_id, "len": 1024}
}

test_configmap_copy_allowed if {
	agent_policy.CopyFileRequest with input as {
		"path": concat("", ["/run/kata-containers/shared/containers/", container_id, "-5e1f2a3b4c5d6e7f-config/app.yaml"]),
		"file_size": 12, "file_mode": 420, "dir_mode": 2147484141, "uid": 0, "gid": 0, "offset": 0, "data": "",
	}
}

test_copy_outside_shared_dir_denied if {
	not agent_policy.CopyFileRequest with input as {"path": "/etc/passwd", "data": ""}
}

test_copy_traversal_denied if {
	not agent_policy.CopyFileRequest with input as {"path": "/run/kata-containers/shared/containers/../../../usr/bin/kata-agent", "data": ""}
}

test_sandbox_with_kernel_modules_denied if {
	not agent_policy.CreateSandboxRequest with input as {
		"hostname": "", "dns": [], "storages": [], "sandbox_pidns": false, "sandbox_id": sandbox_id,
		"guest_hook_path": "", "kernel_modules": [{"name": "evil", "parameters": []}],
	}
}

test_plain_sandbox_allowed if {
	agent_policy.CreateSandboxRequest with input as {
		"hostname": "", "dns": [], "storages": [], "sandbox_pidns": false, "sandbox_id": sandbox_id,
		"guest_hook_path": "", "kernel_modules": [],
	}
}

test_lifecycle_allowed if {
	agent_policy.StartContainerRequest with input as {"container_id": container_id}
	agent_policy.WaitProcessRequest with input as {"container_id": container_id, "exec_id": container_id}
	agent_policy.RemoveContainerRequest with input as {"container_id": container_id, "timeout": 0}
	agent_policy.DestroySandboxRequest with input as {}
}

test_failures_never_allowed if {
	agent_policy.AllowRequestsFailingPolicy == false
}
