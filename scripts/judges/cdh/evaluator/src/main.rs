//! cdh-config-judge: parse what coco renders for the guest with the guest's OWN types.
//!
//!   cdh-config-judge cdh <cdh.toml>       # confidential-data-hub's CdhConfig (hub/src/config/mod.rs)
//!   cdh-config-judge policy <policy.json> # image-rs's signature Policy (image-rs/src/signature/policy/mod.rs)
//!
//! No upstream struct denies unknown fields, so a misspelled key is silently dropped by the guest. The
//! judge therefore deserializes twice: once through upstream's own loader (CdhConfig::from_file, the
//! `config` crate with the hub's defaults, exactly what the hub binaries call), and once through
//! serde_ignored over the same upstream types, which reports every key the types did not consume.
//! Output: one JSON object {"ok": bool, "ignored": [paths], "error": string|null, "parsed": debug}.
use std::process::ExitCode;

use confidential_data_hub::CdhConfig;
use image_rs::signature::Policy;
use serde::Deserialize;

fn ignored_keys<'de, T, D>(de: D) -> Result<(T, Vec<String>), String>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    let mut ignored = Vec::new();
    let value = serde_ignored::deserialize(de, |path| ignored.push(path.to_string()))
        .map_err(|e| e.to_string())?;
    Ok((value, ignored))
}

fn judge_cdh(path: &str) -> (bool, Vec<String>, Option<String>, String) {
    let loaded = match CdhConfig::from_file(path) {
        Ok(c) => c,
        Err(e) => return (false, vec![], Some(format!("CdhConfig::from_file: {e:#}")), String::new()),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return (false, vec![], Some(e.to_string()), String::new()),
    };
    let de = toml::Deserializer::parse(&text);
    let de = match de {
        Ok(d) => d,
        Err(e) => return (false, vec![], Some(format!("toml: {e}")), String::new()),
    };
    match ignored_keys::<CdhConfig, _>(de) {
        Ok((_, ignored)) => (ignored.is_empty(), ignored, None, format!("{loaded:?}")),
        Err(e) => (false, vec![], Some(format!("serde: {e}")), format!("{loaded:?}")),
    }
}

fn judge_policy(path: &str) -> (bool, Vec<String>, Option<String>, String) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return (false, vec![], Some(e.to_string()), String::new()),
    };
    let mut de = serde_json::Deserializer::from_str(&text);
    match ignored_keys::<Policy, _>(&mut de) {
        Ok((_, ignored)) => (ignored.is_empty(), ignored, None, String::new()),
        Err(e) => (false, vec![], Some(format!("serde: {e}")), String::new()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: cdh-config-judge (cdh|policy) <file>");
        return ExitCode::from(2);
    }
    let (ok, ignored, error, parsed) = match args[1].as_str() {
        "cdh" => judge_cdh(&args[2]),
        "policy" => judge_policy(&args[2]),
        other => {
            eprintln!("unknown kind {other}: use cdh or policy");
            return ExitCode::from(2);
        }
    };
    let out = serde_json::json!({"ok": ok, "ignored": ignored, "error": error, "parsed": parsed});
    println!("{out}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
