//! kata-policy-judge: evaluates agent requests against a rendered agent policy in the Kata agent's
//! own policy engine (kata-containers 4.1.0 `src/agent/policy`, regorus at the revision it pins).
//!
//! Protocol: one JSON object per line on stdin, one JSON object per line on stdout.
//!
//!   {"policy": "/path/policy.rego", "session": "s1", "kind": "CreateContainerRequest", "request": {...}}
//!     -> {"allowed": true|false, "prints": "...", "error": null}
//!   {"reset": "s1"}  -> {"reset": true}      (forget that session's engine and its policy state)
//!
//! How a policy is loaded follows the agent's init-data path (`src/agent/src/main.rs`: a policy
//! from init-data is passed to `AgentPolicy::set_policy`), which also applies the agent's policy
//! length limits (64 KiB per line). Each session keeps its own engine, so the policy state
//! (`data.pstate`, used by the sandbox/container rules) carries over between requests of one
//! session as it does inside one pod's agent.
//!
//! How a request reaches the engine follows `src/agent/src/policy.rs`: the request is a
//! `protocols::agent::<Kind>` value serialized with `serde_json::to_string`, evaluated with
//! `AgentPolicy::allow_request(<Kind>, json)`. CopyFileRequest is first converted to
//! `PolicyCopyFileRequest` (`src/agent/src/rpc.rs` copy_file); the request here may be given either
//! as that converted shape (path, file_type, symlink_target, as genpolicy's captured test data
//! does) or, with "raw": true, as the protocol's CopyFileRequest (file_mode, data, ...).
//!
//! So that a field name the agent does not have cannot silently pass (serde drops unknown fields
//! and the protocol types default every missing one), a request whose JSON has a key the typed
//! value does not serialize back is an error, naming the key.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use kata_agent_policy::policy::{AgentPolicy, PolicyCopyFileRequest};
use protocols::agent;
use serde_json::{json, Value};

/// Keys present in `given` that the typed round trip (`back`) does not have, as JSON paths.
fn unknown_keys(given: &Value, back: &Value, at: &str, out: &mut Vec<String>) {
    match (given, back) {
        (Value::Object(g), Value::Object(b)) => {
            for (k, v) in g {
                let path = format!("{at}.{k}");
                match b.get(k) {
                    None => out.push(path),
                    Some(bv) => unknown_keys(v, bv, &path, out),
                }
            }
        }
        (Value::Array(g), Value::Array(b)) => {
            for (i, (gv, bv)) in g.iter().zip(b.iter()).enumerate() {
                unknown_keys(gv, bv, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Deserialize `request` into `T`, re-serialize it as the agent does, and refuse unknown keys.
fn typed<T>(request: &Value) -> Result<String, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let value: T = serde_json::from_value(request.clone()).map_err(|e| format!("request does not parse: {e}"))?;
    let text = serde_json::to_string(&value).map_err(|e| e.to_string())?;
    let back: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    unknown_keys(request, &back, "request", &mut unknown);
    if !unknown.is_empty() {
        return Err(format!("fields the agent's types do not have: {}", unknown.join(", ")));
    }
    Ok(text)
}

/// The JSON the agent would pass to the policy for request `kind`.
fn agent_input(kind: &str, request: &Value, raw: bool) -> Result<String, String> {
    macro_rules! kinds {
        ($($name:ident),* $(,)?) => {
            match kind {
                "CopyFileRequest" => {
                    if raw {
                        let req: agent::CopyFileRequest = serde_json::from_str(&typed::<agent::CopyFileRequest>(request)?)
                            .map_err(|e| e.to_string())?;
                        let conv = PolicyCopyFileRequest::try_from(&req).map_err(|e| e.to_string())?;
                        serde_json::to_string(&conv).map_err(|e| e.to_string())
                    } else {
                        typed::<PolicyCopyFileRequest>(request)
                    }
                }
                $(stringify!($name) => typed::<agent::$name>(request),)*
                other => Err(format!("no such agent request: {other}")),
            }
        };
    }
    // Every request message of the AgentService in src/libs/protocols/protos/agent.proto.
    kinds!(
        AddARPNeighborsRequest, AddSwapPathRequest, AddSwapRequest, CloseStdinRequest,
        CreateContainerRequest, CreateSandboxRequest, DestroySandboxRequest, ExecProcessRequest,
        GetDiagnosticDataRequest, GetIPTablesRequest, GetMetricsRequest, GetOOMEventRequest,
        GuestDetailsRequest, ListInterfacesRequest, ListRoutesRequest, MemAgentCompactConfig,
        MemAgentMemcgConfig, MemHotplugByProbeRequest, OnlineCPUMemRequest, PauseContainerRequest,
        ReadStreamRequest, RemoveContainerRequest, RemoveStaleVirtiofsShareMountsRequest,
        ReseedRandomDevRequest, ResizeVolumeRequest, ResumeContainerRequest, SetGuestDateTimeRequest,
        SetIPTablesRequest, SetPolicyRequest, SignalProcessRequest, StartContainerRequest,
        StatsContainerRequest, TtyWinResizeRequest, UpdateContainerRequest,
        UpdateEphemeralMountsRequest, UpdateInterfaceRequest, UpdateRoutesRequest,
        VolumeStatsRequest, WaitProcessRequest, WriteStreamRequest,
    )
}

struct Judge {
    sessions: HashMap<String, AgentPolicy>,
}

impl Judge {
    async fn handle(&mut self, line: &str) -> Value {
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return json!({"allowed": false, "error": format!("bad input line: {e}")}),
        };
        if let Some(session) = msg.get("reset").and_then(Value::as_str) {
            self.sessions.remove(session);
            return json!({"reset": true});
        }
        let (Some(policy), Some(kind)) = (
            msg.get("policy").and_then(Value::as_str),
            msg.get("kind").and_then(Value::as_str),
        ) else {
            return json!({"allowed": false, "error": "a line needs \"policy\" and \"kind\""});
        };
        let request = msg.get("request").cloned().unwrap_or_else(|| json!({}));
        let raw = msg.get("raw").and_then(Value::as_bool).unwrap_or(false);
        let session = msg.get("session").and_then(Value::as_str).unwrap_or(policy).to_string();

        let input = match agent_input(kind, &request, raw) {
            Ok(s) => s,
            Err(e) => return json!({"allowed": false, "error": e}),
        };
        if !self.sessions.contains_key(&session) {
            let text = match std::fs::read_to_string(policy) {
                Ok(t) => t,
                Err(e) => return json!({"allowed": false, "error": format!("cannot read {policy}: {e}")}),
            };
            let mut engine = AgentPolicy::new();
            // As the agent does with the policy from init-data (src/agent/src/main.rs).
            if let Err(e) = engine.set_policy(&text).await {
                return json!({"allowed": false, "error": format!("policy does not load: {e:#}")});
            }
            self.sessions.insert(session.clone(), engine);
        }
        let engine = self.sessions.get_mut(&session).expect("inserted above");
        match engine.allow_request(kind, &input).await {
            Ok((allowed, prints)) => json!({"allowed": allowed, "prints": prints, "error": null, "input": input}),
            // The agent answers INTERNAL (the request fails) when evaluation errors.
            Err(e) => json!({"allowed": false, "error": format!("evaluation error: {e:#}"), "input": input}),
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let mut judge = Judge { sessions: HashMap::new() };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = rt.block_on(judge.handle(&line));
        if writeln!(stdout, "{answer}").and_then(|_| stdout.flush()).is_err() {
            break;
        }
    }
}
