//! The `verifier` judge: Trustee v0.21.0's own attestation service (verifiers, RVPS, EAR token
//! broker with its default or the stack's attestation policy) run on real TEE evidence, loaded the
//! way the KBS pod loads it.
//!
//! The AS is configured from the stack's rendered KBS config exactly as the KBS builds it
//! (trustee `kbs/src/attestation/coco/builtin.rs` `Config::derive_as_config`: the
//! `[attestation_service]` table plus the unified `[storage_backend]`), over the storage tree the
//! pod's init container laid out (policies and reference values as files). The only departure from
//! the KBS is the expected report data: the KBS derives it from its own nonce and the attester's
//! key (`RuntimeData::Structured`), which real, recorded evidence cannot match; this evaluator
//! passes the AS the report data recorded in the vector as `RuntimeData::Raw`, which the AS API
//! offers for exactly that (`attestation-service/src/lib.rs` `parse_runtime_data`), so the
//! verifier still checks the binding. Init-data goes in as the KBS sends it (`InitDataInput::Toml`)
//! or as a raw digest.
//!
//! Usage:
//!   verifier-judge --kbs-config FILE --tee TEE (--evidence FILE | --snp-report BIN --snp-vek DER
//!                  [--snp-vek-type vcek|vlek]) [--report-data HEX]
//!                  [--init-data-toml FILE | --init-data-digest HEX]
//!
//! Prints one JSON object: `{"ok": true, "submods": {name: {"status", "trust_vector",
//! "annotated_evidence", "policy_id"}}, "token": <its body>, "jwt": <the token>}` from the EAR
//! token the AS issued, or `{"ok": false, "stage": "config|evidence|evaluate", "error": "..."}`
//! (exit status 2) when the AS refuses the evidence.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use attestation_service::config::VerifierConfig;
use attestation_service::ear_token::EarTokenConfiguration;
use attestation_service::rvps::RvpsConfig;
use attestation_service::{
    AttestationService, HashAlgorithm, InitDataInput, RuntimeData, Tee, VerificationRequest,
};
use base64::Engine;
use key_value_storage::{KeyValueStorageType, KvStorageProvider, StorageBackendConfig};
use serde::Deserialize;
use serde_json::{json, Value};
use sev::firmware::guest::AttestationReport;
use sev::firmware::host::{CertTableEntry, CertType};
use sev::parser::ByteParser;

/// The `[attestation_service]` table of a KBS config with `type = "coco_as_builtin"`: the same
/// fields as trustee `kbs/src/attestation/coco/builtin.rs` `Config`.
#[derive(Deserialize)]
struct BuiltinAsConfig {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    rvps_config: RvpsConfig,
    #[serde(default)]
    attestation_token_broker: EarTokenConfiguration,
    #[serde(default)]
    verifier_config: Option<VerifierConfig>,
    #[serde(default)]
    storage_type: Option<KeyValueStorageType>,
}

/// The parts of trustee `kbs/src/config.rs` `KbsConfig` the built-in AS reads.
#[derive(Deserialize)]
struct KbsConfig {
    attestation_service: BuiltinAsConfig,
    #[serde(default)]
    storage_backend: StorageBackendConfig,
}

#[derive(Default)]
struct Args {
    kbs_config: Option<PathBuf>,
    tee: Option<String>,
    evidence: Option<PathBuf>,
    snp_report: Option<PathBuf>,
    snp_vek: Option<PathBuf>,
    snp_vek_type: Option<String>,
    report_data: Option<String>,
    init_data_toml: Option<PathBuf>,
    init_data_digest: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--kbs-config" => args.kbs_config = Some(value()?.into()),
            "--tee" => args.tee = Some(value()?),
            "--evidence" => args.evidence = Some(value()?.into()),
            "--snp-report" => args.snp_report = Some(value()?.into()),
            "--snp-vek" => args.snp_vek = Some(value()?.into()),
            "--snp-vek-type" => args.snp_vek_type = Some(value()?),
            "--report-data" => args.report_data = Some(value()?),
            "--init-data-toml" => args.init_data_toml = Some(value()?.into()),
            "--init-data-digest" => args.init_data_digest = Some(value()?),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

async fn attestation_service(path: &PathBuf) -> Result<AttestationService> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let kbs: KbsConfig = toml::from_str(&text).context("parse the KBS config")?;
    let builtin = kbs.attestation_service;
    if builtin.kind != "coco_as_builtin" {
        bail!("attestation_service.type is {:?}, not coco_as_builtin", builtin.kind);
    }
    // kbs/src/attestation/coco/builtin.rs `derive_as_config`.
    let mut storage_backend = kbs.storage_backend.clone();
    if let Some(storage_type) = builtin.storage_type {
        storage_backend.storage_type = storage_type;
    }
    let config = attestation_service::config::Config {
        rvps_config: builtin.rvps_config,
        attestation_token_broker: builtin.attestation_token_broker,
        verifier_config: builtin.verifier_config,
        storage_backend,
    };
    // kbs/src/api_server.rs: one provider over the unified storage backend.
    let provider = KvStorageProvider::new(kbs.storage_backend);
    Ok(AttestationService::new(config, provider).await?)
}

fn evidence(args: &Args) -> Result<Value> {
    if let Some(path) = &args.evidence {
        let text = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        return serde_json::from_slice(&text).context("evidence is not JSON");
    }
    // An SNP report and its endorsement key as the attester sends them (trustee
    // deps/verifier/src/snp/mod.rs `SnpEvidence { attestation_report, cert_chain }`).
    let (Some(report), Some(vek)) = (&args.snp_report, &args.snp_vek) else {
        bail!("give --evidence, or --snp-report with --snp-vek");
    };
    let report = AttestationReport::from_bytes(&std::fs::read(report)?)
        .context("parse the SNP attestation report")?;
    let cert_type = match args.snp_vek_type.as_deref().unwrap_or("vcek") {
        "vcek" => CertType::VCEK,
        "vlek" => CertType::VLEK,
        other => bail!("--snp-vek-type {other}: vcek or vlek"),
    };
    let chain = vec![CertTableEntry::new(cert_type, std::fs::read(vek)?)];
    Ok(serde_json::to_value(verifier::snp::SnpEvidence::new(report, Some(chain)))?)
}

/// The EAR token's body (its JWT payload, not verified: the AS just signed it).
fn token_claims(token: &str) -> Result<Value> {
    let payload = token.split('.').nth(1).context("the token is not a JWT")?;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("the token payload is not base64url")?;
    Ok(serde_json::from_slice(&body)?)
}

/// The EAR token's submodules: status, trust vector (the claim values), annotated evidence.
fn submods(claims: &Value) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for (name, submod) in claims["submods"].as_object().context("no submods")? {
        out.insert(
            name.clone(),
            json!({
                "status": submod["ear.status"],
                "trust_vector": submod["ear.trustworthiness-vector"],
                "annotated_evidence": submod["ear.veraison.annotated-evidence"],
                "policy_id": submod["ear.appraisal-policy-id"],
            }),
        );
    }
    Ok(out)
}

fn refuse(stage: &str, error: anyhow::Error) -> ! {
    println!("{}", json!({"ok": false, "stage": stage, "error": format!("{error:#}")}));
    std::process::exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => refuse("arguments", e),
    };
    let service = match args.kbs_config.as_ref().context("--kbs-config is required") {
        Ok(path) => match attestation_service(path).await {
            Ok(s) => s,
            Err(e) => refuse("config", e),
        },
        Err(e) => refuse("arguments", e),
    };
    let tee: Tee = match args
        .tee
        .clone()
        .context("--tee is required")
        .and_then(|t| serde_json::from_value(Value::String(t)).context("unknown --tee"))
    {
        Ok(t) => t,
        Err(e) => refuse("arguments", e),
    };
    let evidence = match evidence(&args) {
        Ok(e) => e,
        Err(e) => refuse("evidence", e),
    };
    let runtime_data = match args.report_data.as_deref().map(hex::decode).transpose() {
        Ok(r) => r.map(RuntimeData::Raw),
        Err(e) => refuse("arguments", e.into()),
    };
    let init_data = if let Some(path) = &args.init_data_toml {
        match std::fs::read_to_string(path) {
            Ok(t) => Some(InitDataInput::Toml(t)),
            Err(e) => refuse("arguments", e.into()),
        }
    } else {
        match args.init_data_digest.as_deref().map(hex::decode).transpose() {
            Ok(d) => d.map(InitDataInput::Digest),
            Err(e) => refuse("arguments", e.into()),
        }
    };
    let request = VerificationRequest {
        evidence,
        tee,
        runtime_data,
        // Unused for Raw runtime data; what the KBS would pass for every TEE but SE.
        runtime_data_hash_algorithm: HashAlgorithm::Sha384,
        init_data,
    };
    // The KBS evaluates with policy id "default" (builtin.rs), i.e. `default_cpu` for CPU claims.
    let token = match service.evaluate(vec![request], vec!["default".into()]).await {
        Ok(t) => t,
        Err(e) => refuse("evaluate", e),
    };
    match token_claims(&token).and_then(|claims| Ok((submods(&claims)?, claims))) {
        Ok((s, claims)) => println!(
            "{}",
            json!({"ok": true, "submods": s, "token": claims, "jwt": token})
        ),
        Err(e) => refuse("token", e),
    }
}
