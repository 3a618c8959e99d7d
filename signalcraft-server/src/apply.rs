//! `signalcraft apply [--dry-run] [--prune] FILE`: config as code for users, teams,
//! schedules, escalation policies and services.
//!
//! The file is TOML with `[[users]]`, `[[teams]]`, `[[schedules]]`,
//! `[[escalation_policies]]` and `[[services]]`, or the same structure in YAML
//! (`users:` a list of mappings, …) — chosen by the extension (`.yaml`/`.yml`) or
//! `--format` (the server config file works too; its other sections are ignored). The desired objects are validated together,
//! diffed against what is stored, and the plan is printed (`+ create`, `~ update`
//! with the changed fields, `- delete` with `--prune`). Without `--dry-run` the plan is
//! applied atomically and audited.
//!
//! Two ways to reach the store:
//! * `--server URL` (with `--token-file` or `SIGNALCRAFT_TOKEN`): through the running
//!   server's `POST /api/v1/oncall/apply`;
//! * `--data-dir DIR` (default `./signalcraft-data`): directly, when no server holds
//!   the store open.
//!
//! Exit codes: 0 applied or already in sync; 2 `--dry-run` found changes (drift);
//! 1 errors.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use signalcraft_core::service::Service;
use signalcraft_core::store::{Scan, Store, StoreExt, Table, WriteBatch};

use crate::config::ConfigFormat;
use crate::oncall::{Change, Kind, Objects, OnCall, config_of, objects_of, plan};

/// Arguments of `signalcraft apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// The file with users, teams, schedules, escalation_policies, services.
    pub file: PathBuf,
    /// Print the plan only; exit 2 if there are changes.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete stored objects the file does not contain.
    #[arg(long)]
    pub prune: bool,
    /// Apply through a running server at this URL.
    #[arg(long)]
    pub server: Option<String>,
    /// File holding an API token (manager or admin) for --server.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Data directory of a stopped server (default ./signalcraft-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// File format (default: YAML for .yaml/.yml files, TOML otherwise).
    #[arg(long, value_enum)]
    pub format: Option<ConfigFormat>,
}

/// The desired state, as sent to `POST /api/v1/oncall/apply`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplyRequest {
    /// Users.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub users: Vec<serde_json::Value>,
    /// Teams.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub teams: Vec<serde_json::Value>,
    /// Schedules.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub schedules: Vec<serde_json::Value>,
    /// Escalation policies.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub escalation_policies: Vec<serde_json::Value>,
    /// Services.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub services: Vec<serde_json::Value>,
    /// Plan only.
    #[serde(default)]
    pub dry_run: bool,
    /// Delete what is not in the request.
    #[serde(default)]
    pub prune: bool,
}

/// The plan (and whether it was applied).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplyResponse {
    /// Changes, one line each (`+ create user ann`).
    pub changes: Vec<String>,
    /// Whether they were applied.
    pub applied: bool,
}

/// Reads an apply file (TOML or YAML, see [`ConfigFormat`]) into a request. Errors
/// name the file and the path (`users[0]`) or line at fault.
pub fn read_file(path: &std::path::Path, format: ConfigFormat) -> Result<ApplyRequest, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table = format
        .parse_table(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let section = |name: &str| -> Result<Vec<serde_json::Value>, String> {
        match table.get(name) {
            None => Ok(Vec::new()),
            Some(v) => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| format!("{name}: must be an array of tables ([[{name}]])"))?;
                arr.iter()
                    .enumerate()
                    .map(|(i, x)| serde_json::to_value(x).map_err(|e| format!("{name}[{i}]: {e}")))
                    .collect()
            }
        }
    };
    Ok(ApplyRequest {
        users: section("users")?,
        teams: section("teams")?,
        schedules: section("schedules")?,
        escalation_policies: section("escalation_policies")?,
        services: section("services")?,
        dry_run: false,
        prune: false,
    })
}

fn desired_objects(req: &ApplyRequest) -> Result<Objects, signalcraft_core::CoreError> {
    let mut objs = Objects::new();
    for (k, items) in [
        (Kind::Users, &req.users),
        (Kind::Teams, &req.teams),
        (Kind::Schedules, &req.schedules),
        (Kind::EscalationPolicies, &req.escalation_policies),
    ] {
        let m = objs.entry(k).or_default();
        for (i, v) in items.iter().enumerate() {
            let id = v
                .get("id")
                .and_then(|x| x.as_str())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    signalcraft_core::CoreError::input(
                        format!("{}[{i}].id", k.section()),
                        "id is required",
                    )
                })?;
            if m.insert(id.to_string(), v.clone()).is_some() {
                return Err(signalcraft_core::CoreError::input(
                    format!("{}[{i}].id", k.section()),
                    format!("duplicate id {id:?}"),
                ));
            }
        }
    }
    // Validate everything together and normalize to the stored form.
    let cfg = config_of(&objs)?;
    signalcraft_core::escalation::Directory::new(cfg.clone())?;
    objects_of(&cfg)
}

fn service_changes(
    current: &BTreeMap<String, serde_json::Value>,
    desired: &[Service],
    prune: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let want: BTreeMap<String, serde_json::Value> = desired
        .iter()
        .map(|s| (s.id.clone(), serde_json::to_value(s).unwrap_or_default()))
        .collect();
    for (id, v) in &want {
        match current.get(id) {
            None => out.push(format!("+ create service {id}")),
            Some(old) if old != v => out.push(format!("~ update service {id}")),
            Some(_) => {}
        }
    }
    if prune {
        for id in current.keys().filter(|k| !want.contains_key(*k)) {
            out.push(format!("- delete service {id}"));
        }
    }
    out
}

fn parse_services(req: &ApplyRequest) -> Result<Vec<Service>, signalcraft_core::CoreError> {
    req.services
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let s: Service = serde_path_to_error::deserialize(v.clone()).map_err(|e| {
                signalcraft_core::CoreError::input(
                    format!("services[{i}].{}", e.path()),
                    e.into_inner().to_string(),
                )
            })?;
            s.validate(&format!("services[{i}]"))?;
            Ok(s)
        })
        .collect()
}

/// Plans (and, unless `dry_run`, applies) against a store and on-call state. Used by
/// the API handler (with the engine for services) and the offline CLI.
pub async fn plan_and_apply(
    store: &dyn Store,
    oncall: &OnCall,
    req: &ApplyRequest,
    services_now: BTreeMap<String, serde_json::Value>,
    services_to: ServiceWriter<'_>,
) -> Result<ApplyResponse, crate::error::ApiError> {
    let desired = desired_objects(req)?;
    let services = parse_services(req)?;
    let current = oncall.objects();
    let changes: Vec<Change> = plan(&current, &desired, req.prune);
    let mut lines: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
    let svc_lines = service_changes(&services_now, &services, req.prune);
    lines.extend(svc_lines.iter().cloned());
    if req.dry_run || lines.is_empty() {
        return Ok(ApplyResponse {
            changes: lines,
            applied: false,
        });
    }
    let mut puts = Vec::new();
    let mut dels = Vec::new();
    for c in &changes {
        match c {
            Change::Create { kind, id } | Change::Update { kind, id, .. } => {
                puts.push((*kind, desired[kind][id].clone()));
            }
            Change::Delete { kind, id } => dels.push((*kind, id.clone())),
        }
    }
    oncall.apply(store, puts, dels).await?;
    for s in services {
        let id = s.id.clone();
        let v = serde_json::to_value(&s).unwrap_or_default();
        if services_now.get(&id) != Some(&v) {
            services_to.put(s).await?;
        }
    }
    if req.prune {
        let want: std::collections::BTreeSet<String> =
            parse_services(req)?.into_iter().map(|s| s.id).collect();
        for id in services_now.keys().filter(|k| !want.contains(*k)) {
            services_to.delete(id).await?;
        }
    }
    Ok(ApplyResponse {
        changes: lines,
        applied: true,
    })
}

/// Where service changes go: through the engine (running server, audited by the
/// engine) or straight into a stopped server's store.
pub enum ServiceWriter<'a> {
    /// The running engine, acting as this actor.
    Engine(
        &'a signalcraft_core::engine::Engine,
        signalcraft_core::incident::Actor,
    ),
    /// A store no engine is using.
    Store(&'a dyn Store),
}

impl ServiceWriter<'_> {
    async fn put(&self, s: Service) -> Result<(), crate::error::ApiError> {
        match self {
            ServiceWriter::Engine(e, a) => e.put_service(s, a.clone()).await.map(|_| ())?,
            ServiceWriter::Store(st) => {
                let mut b = WriteBatch::new();
                b.put(Table::Services, s.id.clone(), &s)?;
                st.commit(b).await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), crate::error::ApiError> {
        match self {
            ServiceWriter::Engine(e, a) => e.delete_service(id, a.clone()).await?,
            ServiceWriter::Store(st) => {
                let mut b = WriteBatch::new();
                b.delete(Table::Services, id);
                st.commit(b).await?;
            }
        }
        Ok(())
    }
}

/// `signalcraft apply`.
pub fn main(args: &ApplyArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let format = args
        .format
        .unwrap_or_else(|| ConfigFormat::from_path(&args.file));
    let mut req = match read_file(&args.file, format) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    req.dry_run = args.dry_run;
    req.prune = args.prune;
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async {
        match &args.server {
            Some(url) => remote(url, args, &req).await,
            None => offline(args, &req).await,
        }
    });
    match result {
        Ok(resp) => {
            if resp.changes.is_empty() {
                let _ = writeln!(out, "no changes: the store matches {}", args.file.display());
                return 0;
            }
            for c in &resp.changes {
                let _ = writeln!(out, "{c}");
            }
            if resp.applied {
                let _ = writeln!(out, "applied {} change(s)", resp.changes.len());
                0
            } else {
                let _ = writeln!(
                    out,
                    "{} change(s) planned (dry run, nothing applied)",
                    resp.changes.len()
                );
                2
            }
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            1
        }
    }
}

async fn remote(url: &str, args: &ApplyArgs, req: &ApplyRequest) -> Result<ApplyResponse, String> {
    crate::server::install_crypto_provider();
    let token = match &args.token_file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .trim()
            .to_string(),
        None => std::env::var("SIGNALCRAFT_TOKEN")
            .map_err(|_| "--server needs --token-file or SIGNALCRAFT_TOKEN".to_string())?,
    };
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/oncall/apply", url.trim_end_matches('/')))
        .bearer_auth(token)
        .json(req)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {}", e.without_url()))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let detail = serde_json::from_str::<crate::error::Problem>(&body)
            .map(|p| match p.field {
                Some(f) => format!("{f}: {}", p.detail),
                None => p.detail,
            })
            .unwrap_or(body);
        return Err(format!("server answered {status}: {detail}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("unexpected answer: {e}"))
}

async fn offline(args: &ApplyArgs, req: &ApplyRequest) -> Result<ApplyResponse, String> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./signalcraft-data"));
    let path = dir.join(crate::bootstrap::STORE_FILE);
    if !path.exists() {
        return Err(format!(
            "no store at {} (start the server once, or pass --data-dir / --server)",
            path.display()
        ));
    }
    let store = signalcraft_store::RedbStore::open(&path).map_err(|e| {
        format!("{e} (is the server running? then use --server URL --token-file FILE)")
    })?;
    let oncall = OnCall::load(&store).await.map_err(|e| e.to_string())?;
    let services_now: BTreeMap<String, serde_json::Value> = store
        .scan_json::<serde_json::Value>(Table::Services, Scan::all())
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let resp = plan_and_apply(
        &store,
        &oncall,
        req,
        services_now,
        ServiceWriter::Store(&store),
    )
    .await
    .map_err(|e| match e.field {
        Some(f) => format!("{f}: {}", e.detail),
        None => e.detail,
    })?;
    if resp.applied {
        let now = jiff::Timestamp::now();
        let entry = signalcraft_core::incident::AuditEntry {
            id: format!("{}-apply", signalcraft_core::incident::audit::time_key(now)),
            at: now,
            actor: signalcraft_core::incident::Actor::user("cli:apply"),
            action: "oncall.apply".into(),
            target: format!("file/{}", args.file.display()),
            details: serde_json::json!({"changes": resp.changes}),
        };
        let mut b = WriteBatch::new();
        b.put(Table::Audit, entry.key(), &entry)
            .map_err(|e| e.to_string())?;
        store.commit(b).await.map_err(|e| e.to_string())?;
    }
    Ok(resp)
}
