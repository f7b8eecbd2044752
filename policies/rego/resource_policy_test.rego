# Allow/deny cases for the generated KBS resource policy, run with `opa test`.
#
# tests/test_resource_policy.py renders policies/resource.py for the fixture grants
#   default/key/1      tdx, affirming, init_data == tdx_claim
#   default/gpu-key/1  tdx, affirming, init_data == tdx_claim, require_gpu
# into a temporary directory next to this file and runs `opa test` on both.
# The token follows the EAR shape trustee's KBS passes as `input` (kbs policy_engine tests,
# attestation-service ear_token broker): submods.cpu0 with ear.status and annotated evidence.
package resource_policy_test

import rego.v1

import data.policy

tdx_claim := "2192fb8f60d5733a743189c45eecb664647cc04e192d34f9a7466d611adcc5137699d24d04606334de0e71856516dcf4"

other_claim := "eef26c4aa9aade913b1cebafc243ac4999051242f15922283b7c959bc1616addbd8e36fdb0371d96e9ffe05e3447d425"

cpu(status, claim) := {
	"ear.status": status,
	"ear.appraisal-policy-id": "default_cpu",
	"ear.trustworthiness-vector": {"configuration": 2, "executables": 3, "hardware": 2},
	"ear.veraison.annotated-evidence": {
		"tdx": {
			"quote": {"header": {"tee_type": "81000000"}, "body": {"mr_config_id": claim, "mr_td": "705ee938"}},
			"td_attributes": {"debug": false},
		},
		"init_data": claim,
		"report_data": "7c71fe2c",
		"init_data_claims": {},
		"runtime_data_claims": {},
	},
}

token(submods) := {
	"eat_profile": "tag:github.com,2023:veraison/ear",
	"iat": 1767225600,
	"ear.verifier-id": {"developer": "https://confidentialcontainers.org", "build": "attestation-service 0.21.0"},
	"submods": submods,
}

affirming := token({"cpu0": cpu("affirming", tdx_claim)})


test_released_list_path if {
	policy.allow with input as affirming with data["resource-path"] as ["default", "key", "1"] with data.plugin as "resource"
}

test_released_string_path if {
	policy.allow with input as affirming with data["resource-path"] as "default/key/1"
}

test_released_leading_slash_path if {
	policy.allow with input as affirming with data["resource-path"] as "/default/key/1" with data.plugin as "resource"
}

test_wrong_initdata_refused if {
	not policy.allow with input as token({"cpu0": cpu("affirming", other_claim)}) with data["resource-path"] as ["default", "key", "1"]
}

test_contraindicated_refused if {
	not policy.allow with input as token({"cpu0": cpu("contraindicated", tdx_claim)}) with data["resource-path"] as ["default", "key", "1"]
}

test_warning_refused_when_affirming_required if {
	not policy.allow with input as token({"cpu0": cpu("warning", tdx_claim)}) with data["resource-path"] as ["default", "key", "1"]
}

test_other_path_refused if {
	not policy.allow with input as affirming with data["resource-path"] as ["default", "key", "2"]
}

test_other_plugin_refused if {
	not policy.allow with input as affirming with data["resource-path"] as ["default", "key", "1"] with data.plugin as "nebula-ca"
}

test_gpu_required_gpu0_missing_refused if {
	not policy.allow with input as affirming with data["resource-path"] as ["default", "gpu-key", "1"]
}

test_gpu_required_gpu0_affirming_released if {
	policy.allow with input as token({"cpu0": cpu("affirming", tdx_claim), "gpu0": {"ear.status": "affirming"}})
		with data["resource-path"] as ["default", "gpu-key", "1"]
}

test_gpu_required_second_gpu_warning_refused if {
	not policy.allow with input as token({
		"cpu0": cpu("affirming", tdx_claim),
		"gpu0": {"ear.status": "affirming"},
		"gpu1": {"ear.status": "warning"},
	})
		with data["resource-path"] as ["default", "gpu-key", "1"]
}

test_empty_token_refused if {
	not policy.allow with input as {} with data["resource-path"] as ["default", "key", "1"]
}
