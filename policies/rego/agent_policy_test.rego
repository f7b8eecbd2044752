# Allow/deny cases for the generated agent policy, run with `opa test`.
#
# tests/test_agent_policy.py renders policies/agent.py for the fixture spec
#   AgentPolicySpec(allowed_images=[app_image]) with container "app" pinned to env API_PORT=8443
# into a temporary directory next to this file, together with `data.fixtures`: requests built
# by tests/agent_requests.py in the shapes the agent really sends (genpolicy's captured requests,
# kata-containers 4.1.0 src/tools/genpolicy/tests/policy/testdata), and runs `opa test`.
# The same policies are judged by the agent's own engine in tests/conformance/test_agent_judge.py.
package agent_policy_test

import rego.v1

import data.agent_policy
import data.fixtures

evil_image := "ghcr.io/evil/miner@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

app := fixtures.container

test_listed_image_allowed if {
	agent_policy.CreateContainerRequest with input as app
}

test_sandbox_with_builtin_pause_allowed if {
	agent_policy.CreateContainerRequest with input as fixtures.pause
}

test_unlisted_image_denied if {
	swapped := json.patch(app, [
		{"op": "replace", "path": "/OCI/Annotations/io.kubernetes.cri.image-name", "value": evil_image},
		{"op": "replace", "path": "/storages/0/source", "value": evil_image},
	])
	not agent_policy.CreateContainerRequest with input as swapped
}

test_listed_name_but_other_pull_source_denied if {
	swapped := json.patch(app, [{"op": "replace", "path": "/storages/0/source", "value": evil_image}])
	not agent_policy.CreateContainerRequest with input as swapped
}

test_sandbox_pulling_a_real_image_denied if {
	swapped := json.patch(fixtures.pause, [{"op": "replace", "path": "/storages/0/source", "value": evil_image}])
	not agent_policy.CreateContainerRequest with input as swapped
}

test_container_without_guest_pull_denied if {
	not agent_policy.CreateContainerRequest with input as json.patch(app, [{"op": "replace", "path": "/storages", "value": []}])
}

test_oci_hooks_denied if {
	hooked := json.patch(app, [{"op": "replace", "path": "/OCI/Hooks", "value": {"Prestart": [{"Path": "/bin/sh"}]}}])
	not agent_policy.CreateContainerRequest with input as hooked
}

test_bind_mount_over_binary_denied if {
	mount := {"destination": "/app/server", "source": fixtures.evil_source, "type_": "bind", "options": ["rbind", "ro"]}
	not agent_policy.CreateContainerRequest with input as json.patch(app, [{"op": "add", "path": "/OCI/Mounts/-", "value": mount}])
}

test_ld_preload_denied if {
	preload := concat("", ["LD_PRELOAD=", fixtures.evil_source, "/x.so"])
	not agent_policy.CreateContainerRequest with input as json.patch(app, [{"op": "add", "path": "/OCI/Process/Env/-", "value": preload}])
}

test_changed_env_value_denied if {
	changed := [e | some e in app.OCI.Process.Env; e != "API_PORT=8443"]
	not agent_policy.CreateContainerRequest with input as json.patch(app, [{"op": "replace", "path": "/OCI/Process/Env", "value": array.concat(changed, ["API_PORT=1"])}])
}

test_privileged_denied if {
	caps := array.concat(app.OCI.Process.Capabilities.Bounding, ["CAP_SYS_ADMIN"])
	not agent_policy.CreateContainerRequest with input as json.patch(app, [
		{"op": "replace", "path": "/OCI/Process/Capabilities/Bounding", "value": caps},
		{"op": "replace", "path": "/OCI/Linux/MaskedPaths", "value": []},
	])
}

test_sandbox_pidns_denied if {
	not agent_policy.CreateContainerRequest with input as json.patch(app, [{"op": "replace", "path": "/sandbox_pidns", "value": true}])
	not agent_policy.CreateSandboxRequest with input as json.patch(fixtures.sandbox, [{"op": "replace", "path": "/sandbox_pidns", "value": true}])
}

test_exec_denied if {
	not agent_policy.ExecProcessRequest with input as fixtures.exec
}

test_set_policy_denied if {
	not agent_policy.SetPolicyRequest with input as {"policy": "package agent_policy\ndefault ExecProcessRequest := true\n"}
}

test_logs_denied if {
	not agent_policy.ReadStreamRequest with input as {"container_id": app.container_id, "exec_id": app.container_id, "len": 1024}
}

test_termination_message_allowed if {
	agent_policy.GetDiagnosticDataRequest with input as {"container_id": app.container_id, "log_type": "termination_log"}
}

test_pod_copies_allowed if {
	every f in fixtures.copies {
		agent_policy.CopyFileRequest with input as f
	}
}

test_copy_outside_shared_dir_denied if {
	not agent_policy.CopyFileRequest with input as {"path": "/etc/passwd", "file_type": "Regular", "file_mode": 33188}
}

test_copy_traversal_denied if {
	not agent_policy.CopyFileRequest with input as {"path": "/run/kata-containers/shared/containers/../../../usr/bin/kata-agent", "file_type": "Regular", "file_mode": 33188}
}

test_copy_symlink_out_denied if {
	link := json.patch(fixtures.copies[count(fixtures.copies) - 1], [{"op": "replace", "path": "/symlink_target", "value": "/etc/shadow"}])
	not agent_policy.CopyFileRequest with input as link
}

test_sandbox_with_kernel_modules_denied if {
	not agent_policy.CreateSandboxRequest with input as json.patch(fixtures.sandbox, [{"op": "replace", "path": "/kernel_modules", "value": [{"name": "evil", "parameters": []}]}])
}

test_plain_sandbox_allowed if {
	agent_policy.CreateSandboxRequest with input as fixtures.sandbox
}

test_lifecycle_allowed if {
	agent_policy.StartContainerRequest with input as {"container_id": app.container_id}
	agent_policy.WaitProcessRequest with input as {"container_id": app.container_id, "exec_id": app.container_id}
	agent_policy.RemoveContainerRequest with input as {"container_id": app.container_id, "timeout": 0}
	agent_policy.DestroySandboxRequest with input as {}
}

test_failures_never_allowed if {
	agent_policy.AllowRequestsFailingPolicy == false
}

test_copy_executable_denied if {
	planted := json.patch(fixtures.copies[0], [{"op": "replace", "path": "/file_mode", "value": 33261}])
	not agent_policy.CopyFileRequest with input as planted
}
