//! Running the server: `signalcraft serve` ([`main`]), the library entry points
//! [`serve`] and [`start`], and `signalcraft check-config` ([`check_config_main`]).
//!
//! Shutdown (SIGTERM or Ctrl-C): `/-/ready` turns 503, the listener stops accepting,
//! in-flight requests get up to `server.shutdown_timeout` to finish (each one that
//! returned success is already durable), the engine's job loop stops after its
//! current job (jobs are durable and resume on the next start), then the store closes.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use signalcraft_core::clock::{Clock, SystemClock};
use signalcraft_core::delivery::{DeliveryConfig, DeliveryPipeline};
use signalcraft_core::engine::{Engine, EscalationHook, EventSink, Notifier, PlannerEscalation};
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{TokenRecord, TokenRegistry};
use crate::bootstrap;
use crate::config::{self, ConfigError, ResolvedSecrets, ServerConfig};
use crate::engine::EngineHandle;
use crate::error::ServerError;
use crate::integrations::Integrations;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::state::{AppState, Inner};

/// redb page cache of the server's store (default of `[server] store_cache_bytes`).
/// The engine keeps every active record in memory and reads the store only at start
/// and for history, so a big page cache (the store's default is 256 MiB) would mostly
/// double the memory of what the engine already holds.
pub const STORE_CACHE_BYTES: usize = config::DEFAULT_STORE_CACHE_BYTES;

/// Arguments of `signalcraft serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Config file (TOML, or YAML for .yaml/.yml). Without it: defaults, and a commented default config is
    /// written next to the data directory.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Listen address (overrides `server.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory (overrides `server.data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Installs ring as the process's rustls crypto provider (idempotent).
pub fn install_crypto_provider() {
    // AlreadyInstalled is fine: an embedding application chose one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A running server (for tests and embedders).
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The shared state.
    pub state: AppState,
    /// Where the bootstrap admin token was written, if it was created by this start.
    pub admin_token_file: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    join: tokio::task::JoinHandle<Result<(), ServerError>>,
    /// The store this server opened itself (not one passed in [`StartOptions`]):
    /// `shutdown` waits until the last task holding it let go, so the file is closed.
    owned_store: Option<std::sync::Weak<dyn Store>>,
    shutdown_timeout: std::time::Duration,
}

impl RunningServer {
    /// Base URL, e.g. `http://127.0.0.1:9093`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts a graceful shutdown and waits for it.
    ///
    /// When the server opened its own store, this returns once every task holding
    /// it ended (the ingest batcher, background deliveries, connection tasks), so the
    /// store file is closed and may be opened again; at most `shutdown_timeout`.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let RunningServer {
            state,
            shutdown,
            join,
            owned_store,
            shutdown_timeout,
            ..
        } = self;
        let _ = shutdown.send(true);
        let result = join
            .await
            .map_err(|e| ServerError::Other(format!("server task failed: {e}")))?;
        drop(state);
        if let Some(store) = owned_store {
            let released = tokio::time::timeout(shutdown_timeout, async {
                while store.strong_count() > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
            .await;
            if released.is_err() {
                tracing::warn!("the store was still in use when the shutdown deadline passed");
            }
        }
        result
    }
}

/// Everything `start` needs besides the config.
pub struct StartOptions {
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Paging; default: the on-call paging hook over the server's directory.
    pub escalation: Option<Arc<dyn EscalationHook>>,
    /// Store; default: redb in `data_dir`.
    pub store: Option<(Arc<dyn Store>, Arc<dyn Scheduler>)>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            clock: Arc::new(SystemClock),
            escalation: None,
            store: None,
        }
    }
}

fn cfg_errors(errors: Vec<ConfigError>) -> ServerError {
    ServerError::Config(errors)
}

/// Builds channels from `[[channels]]`, substituting resolved secret references.
/// `store` (the server's store; `None` when only validating) lets channels keep
/// durable state, e.g. which email thread roots were sent.
fn build_channels(
    cfg: &ServerConfig,
    secrets: &ResolvedSecrets,
    store: Option<Arc<dyn Store>>,
) -> Result<Vec<Arc<dyn signalcraft_core::channel::Channel>>, ServerError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, ch) in cfg.channels.iter().enumerate() {
        let path = format!("channels[{i}]");
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), ch.kind.clone().into());
        obj.insert("name".into(), ch.name.clone().into());
        for (k, v) in &ch.settings {
            let resolved = secrets.channel_secrets.get(&ch.name).and_then(|m| m.get(k));
            let value = match resolved {
                Some(s) => serde_json::Value::String(s.expose().to_string()),
                None => match v.as_str() {
                    Some(r) if r.starts_with("env:") || r.starts_with("file:") => {
                        match crate::secret::resolve(r) {
                            Ok(s) => serde_json::Value::String(s.expose().to_string()),
                            Err(e) => {
                                errors.push(ConfigError {
                                    path: format!("{path}.{k}"),
                                    message: e.to_string(),
                                });
                                continue;
                            }
                        }
                    }
                    _ => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                },
            };
            obj.insert(k.clone(), value);
        }
        let built = signalcraft_providers::channels::ChannelConfig::from_json(
            &serde_json::Value::Object(obj),
            &path,
        )
        .and_then(|c| c.build_with_store(&path, store.clone()));
        match built {
            Ok(c) => out.push(c),
            Err(e) => errors.push(ConfigError {
                path,
                message: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(cfg_errors(errors))
    }
}

/// The paging hook: escalation policies and notification rules over the server's
/// on-call directory (kept current by [`crate::state::AppState::oncall_changed`]).
fn paging_hook(oncall: &crate::oncall::OnCall) -> Arc<PlannerEscalation> {
    Arc::new(PlannerEscalation::new((*oncall.directory()).clone()))
}

#[cfg(feature = "remediation")]
fn build_remediation(
    cfg: &ServerConfig,
    clock: Arc<dyn Clock>,
) -> Result<Option<Arc<crate::remediation::Remediation>>, ServerError> {
    if !cfg.features.remediation {
        return Ok(None);
    }
    Ok(Some(Arc::new(crate::remediation::build(
        &cfg.remediation,
        clock,
    )?)))
}

#[cfg(not(feature = "remediation"))]
fn build_remediation(
    cfg: &ServerConfig,
    _clock: Arc<dyn Clock>,
) -> Result<Option<Arc<crate::remediation::Remediation>>, ServerError> {
    if cfg.features.remediation {
        return Err(ServerError::Other(
            "features.remediation is on, but this binary was built without the `remediation` cargo feature".into(),
        ));
    }
    Ok(None)
}

/// Builds the state, binds the listener and starts serving in the background.
pub async fn start(
    cfg: ServerConfig,
    secrets: ResolvedSecrets,
    opts: StartOptions,
) -> Result<RunningServer, ServerError> {
    install_crypto_provider();
    let data_dir = cfg.server.data_dir.clone();
    bootstrap::ensure_data_dir(&data_dir)?;
    let opened_here = opts.store.is_none();
    // The embedded store, kept typed for `[retention] compact`.
    let mut redb_store: Option<Arc<signalcraft_store::RedbStore>> = None;
    let (store, scheduler): (Arc<dyn Store>, Arc<dyn Scheduler>) = match opts.store {
        Some(s) => s,
        None => {
            let path = data_dir.join(bootstrap::STORE_FILE);
            let redb = signalcraft_store::RedbStore::open_with(
                &path,
                signalcraft_store::StoreOptions {
                    cache_bytes: cfg.server.store_cache_bytes,
                    encryption_key: secrets.store_key.clone(),
                    previous_keys: secrets.previous_store_keys.clone(),
                    ..Default::default()
                },
            )?;
            if !secrets.previous_store_keys.is_empty() {
                // Key rotation: move every sealed secret to the current key now.
                let report = redb.reseal_secrets().await.map_err(|e| {
                    ServerError::Other(format!("re-sealing integration secrets: {e}"))
                })?;
                tracing::info!(
                    from_previous = report.from_previous,
                    from_clear = report.from_clear,
                    unchanged = report.unchanged,
                    "re-sealed integration secrets under the current encryption key"
                );
            }
            let sched = redb.scheduler();
            let redb = Arc::new(redb);
            redb_store = Some(redb.clone());
            (redb as Arc<dyn Store>, Arc::new(sched))
        }
    };
    let clock = opts.clock;
    let metrics = Arc::new(Metrics::new());
    // Count pending jobs in memory, so /metrics does not scan the job table.
    let counted = crate::queue::CountingScheduler::wrap(scheduler).await?;
    let scheduler: Arc<dyn Scheduler> = counted.clone();
    metrics.set_queue_depth_source(move || counted.depth());

    // Tokens: stored ones, config ones (in memory only), bootstrap admin.
    let tokens = TokenRegistry::load(store.as_ref()).await?;
    for t in &cfg.tokens {
        if let Some(value) = secrets.tokens.get(&t.name) {
            tokens.insert_ephemeral(
                value.expose(),
                TokenRecord {
                    name: t.name.clone(),
                    role: t.role,
                    permissions: t.permissions.clone(),
                    user: t.user.clone(),
                    created_at: clock.now(),
                    origin: "config".into(),
                },
            );
        }
    }
    let admin_token_file =
        bootstrap::ensure_admin_token(store.as_ref(), &tokens, &data_dir, clock.now()).await?;

    let oncall = crate::oncall::OnCall::load(store.as_ref())
        .await
        .map_err(|e| ServerError::Other(format!("on-call data in the store is invalid: {e}")))?;

    // Delivery and engine.
    let channels = build_channels(&cfg, &secrets, Some(store.clone()))?;
    let delivery_cfg: DeliveryConfig = cfg.delivery.clone();
    let pipeline = Arc::new(
        DeliveryPipeline::new(
            delivery_cfg,
            channels,
            store.clone(),
            scheduler.clone(),
            clock.clone(),
        )
        .map_err(ServerError::Core)?,
    );
    // Remediation (when enabled) runs auto actions for every incident that opens.
    let remediation = build_remediation(&cfg, clock.clone())?;
    let (event_sink, opened) = match &remediation {
        Some(_) => {
            let (sink, rx) = crate::remediation::OpenedIncidents::new(metrics.clone());
            (sink as Arc<dyn EventSink>, Some(rx))
        }
        None => (metrics.clone() as Arc<dyn EventSink>, None),
    };
    let paging = paging_hook(&oncall);
    let mut engine_cfg = cfg.engine.clone();
    if engine_cfg.external_url.is_none() {
        engine_cfg.external_url = cfg.server.external_url.clone();
    }
    let mut builder = Engine::builder(engine_cfg);
    if opened_here && cfg.server.journal {
        // The journal continues after what the store already holds (see
        // signalcraft_core::journal); recover() below replays the rest.
        let applied = signalcraft_core::engine::journal_applied(store.as_ref()).await?;
        let journal =
            signalcraft_store::FileJournal::open(data_dir.join(bootstrap::JOURNAL_DIR), applied)?;
        builder = builder
            .journal(Arc::new(journal))
            .journal_max_lag(cfg.server.journal_max_lag)
            .journal_apply_batch(cfg.server.journal_apply_batch);
    }
    let engine = builder
        .store(store.clone())
        .scheduler(scheduler.clone())
        .clock(clock.clone())
        .notifier(pipeline.clone() as Arc<dyn Notifier>)
        .event_sink(event_sink)
        // Group records carry their next flush and recover re-arms it: no durable
        // writes to arm, claim and complete a flush job per group per group_interval.
        .in_memory_flush_timers(true)
        // Raw payloads live in the store, not in memory (a third of the memory per alert).
        .compact_alerts(true)
        .renotify_yield(cfg.server.renotify_yield)
        // First notifications of a burst of new groups before more ingest.
        .ingest_waits_for_backlog(cfg.server.ingest_backlog_limit)
        .escalation(match opts.escalation {
            Some(e) => e,
            None => paging.clone() as Arc<dyn EscalationHook>,
        })
        .build()?;
    engine.set_journal_max_lag_bytes(cfg.server.journal_max_lag_bytes);
    // Before recover, which replays journal records in this format.
    engine.register_journal_format(
        crate::api::alertmanager::JOURNAL_FORMAT,
        Arc::new(crate::api::alertmanager::PostedAlerts),
    );
    engine.recover().await?;
    // Handoff notifications: each schedule's next handoff is a durable job.
    crate::state::rearm_handoffs(&engine, &oncall.directory()).await?;
    // Periodic channel health checks (Slack auth.test, SMTP NOOP, Twilio account
    // fetch): a durable job every `delivery.health.check_interval_secs`.
    pipeline
        .start_health_checks()
        .await
        .map_err(ServerError::Core)?;

    let registry = signalcraft_providers::sources::Registry::builtin();
    let integrations = Integrations::from_config(
        &registry,
        &cfg.integrations,
        &secrets,
        cfg.server.body_limit_bytes,
    )
    .map_err(cfg_errors)?;
    crate::api::v1::integrations::load_stored(&registry, &integrations, store.as_ref()).await?;

    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .map_err(|e| ServerError::Bind {
            addr: cfg.server.listen.to_string(),
            source: e,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Other(format!("listener address: {e}")))?;

    let sweeper = crate::retention::Sweeper::new(
        &cfg.retention,
        &data_dir,
        engine.clone(),
        redb_store,
        clock.clone(),
        metrics.clone(),
    )?;
    let retention_interval = cfg.retention.interval;
    let handle = Arc::new(EngineHandle::new(
        engine.clone(),
        Some(pipeline),
        scheduler.clone(),
    ));
    let shutdown_timeout = cfg.server.shutdown_timeout;
    let state = AppState(Arc::new(Inner {
        engine: handle,
        store,
        config: cfg,
        secrets,
        tokens,
        oncall,
        integrations,
        registry,
        paging,
        remediation,
        metrics,
        limiter: RateLimiter::new(),
        clock: clock.clone(),
        started_at: clock.now(),
        ready: AtomicBool::new(true),
    }));

    let (tx, rx) = watch::channel(false);
    if let (Some(r), Some(rx)) = (&state.remediation, opened) {
        crate::remediation::spawn_auto_runs(r.clone(), state.engine.clone(), rx);
    }
    if let Some(sweeper) = sweeper {
        sweeper.spawn(retention_interval, rx.clone());
    }
    let router = crate::router::build_router(state.clone());
    let st = state.clone();
    let join = tokio::spawn(async move {
        let mut rx_engine = rx.clone();
        let engine_task = tokio::spawn(async move {
            let stop = async move {
                let _ = rx_engine.wait_for(|v| *v).await;
            };
            engine.run(stop).await
        });
        let mut rx_http = rx.clone();
        let st2 = st.clone();
        let graceful = async move {
            let _ = rx_http.wait_for(|v| *v).await;
            st2.set_ready(false);
            tracing::info!("shutting down: draining in-flight requests");
        };
        let server = axum::serve(listener, router).with_graceful_shutdown(graceful);
        let mut rx_deadline = rx.clone();
        let deadline = async move {
            let _ = rx_deadline.wait_for(|v| *v).await;
            tokio::time::sleep(shutdown_timeout).await;
        };
        tokio::select! {
            r = server => r.map_err(|e| ServerError::Other(format!("HTTP server: {e}")))?,
            _ = deadline => tracing::warn!("shutdown deadline passed; dropping in-flight requests"),
        }
        // Everything acknowledged is durable in the journal already; applying it now
        // only spares the next start a replay.
        if let Ok(Err(e)) =
            tokio::time::timeout(shutdown_timeout, st.engine.settled_for_shutdown()).await
        {
            tracing::warn!(error = %e, "applying the ingest journal before stopping failed");
        }
        match tokio::time::timeout(shutdown_timeout, engine_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "engine loop ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "engine loop panicked"),
            Err(_) => tracing::warn!("engine loop did not stop within the shutdown deadline"),
        }
        tracing::info!("stopped");
        Ok(())
    });
    let owned_store = opened_here.then(|| Arc::downgrade(&state.store));
    Ok(RunningServer {
        addr,
        state,
        admin_token_file,
        shutdown: tx,
        join,
        owned_store,
        shutdown_timeout,
    })
}

/// A future that resolves once SIGTERM or SIGINT (Ctrl-C) arrives. The handlers are
/// installed when this function is called, not when the future is first polled, so a
/// signal sent right after the caller announced readiness is never missed.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the server until SIGTERM/Ctrl-C.
pub async fn serve(cfg: ServerConfig, secrets: ResolvedSecrets) -> Result<(), ServerError> {
    let running = start(cfg, secrets, StartOptions::default()).await?;
    let signal = shutdown_signal();
    print_banner(&running);
    signal.await;
    running.shutdown().await
}

fn print_banner(r: &RunningServer) {
    let url = r.url();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "SignalCraft {} listening on {url}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "  Alertmanager API (point Prometheus here): {url}/api/v2/alerts"
    );
    let _ = writeln!(
        out,
        "  PagerDuty Events API v2:                  {url}/v2/enqueue"
    );
    let _ = writeln!(
        out,
        "  Webhooks:                                 {url}/integrations/<key>"
    );
    let _ = writeln!(
        out,
        "  REST API:                                 {url}/api/v1 (OpenAPI: {url}/api/openapi.json)"
    );
    let _ = writeln!(
        out,
        "  Metrics:                                  {url}/metrics"
    );
    if let Some(p) = &r.admin_token_file {
        let _ = writeln!(
            out,
            "  Admin API token written to {} (mode 0600; shown only there)",
            p.display()
        );
    }
}

fn init_logging(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}

/// Loads the config for `serve` (or the defaults) and applies the CLI overrides.
pub fn load_for_serve(
    args: &ServeArgs,
) -> Result<(ServerConfig, ResolvedSecrets, Option<PathBuf>), ServerError> {
    let (mut cfg, secrets) = match &args.config {
        Some(p) => config::load(p).map_err(cfg_errors)?,
        None => (ServerConfig::default(), ResolvedSecrets::default()),
    };
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(d) = &args.data_dir {
        cfg.server.data_dir = d.clone();
    }
    let mut written = None;
    if args.config.is_none() {
        bootstrap::ensure_data_dir(&cfg.server.data_dir)?;
        let p = bootstrap::default_config_path(&cfg.server.data_dir);
        if bootstrap::write_default_config(&p, cfg.server.listen, &cfg.server.data_dir)? {
            written = Some(p);
        }
    }
    Ok((cfg, secrets, written))
}

/// `signalcraft serve`.
pub fn main(args: ServeArgs) -> i32 {
    let (cfg, secrets, written) = match load_for_serve(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    init_logging(cfg.server.log_format);
    if let Some(p) = written {
        println!("Wrote a commented default config to {}", p.display());
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(serve(cfg, secrets)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Output format of `signalcraft check-config`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// `ok: FILE` on stdout, or one `error: PATH: MESSAGE` line per error on stderr.
    #[default]
    Text,
    /// A JSON array of `{"path", "message"}` on stdout (`[]` when the config is valid).
    Json,
}

/// `signalcraft check-config FILE`: prints every error with its path; exit 1 if any.
pub fn check_config_main(file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    check_config_main_as(file, CheckFormat::Text, out, err)
}

/// `signalcraft check-config [--format text|json] FILE`: prints every error with its
/// path in `format`; exit 1 if any. With `json`, stdout is always one JSON array
/// (machine-readable, nothing else is printed there), empty when the config is valid.
pub fn check_config_main_as(
    file: &Path,
    format: CheckFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let result = check_config(file);
    let code = i32::from(result.is_err());
    match (format, result) {
        (CheckFormat::Text, Ok(())) => {
            let _ = writeln!(out, "ok: {}", file.display());
        }
        (CheckFormat::Text, Err(errors)) => {
            for e in &errors {
                let _ = writeln!(err, "error: {e}");
            }
            let _ = writeln!(err, "{} error(s) in {}", errors.len(), file.display());
        }
        (CheckFormat::Json, result) => {
            let errors = result.err().unwrap_or_default();
            let list: Vec<serde_json::Value> = errors
                .iter()
                .map(|e| serde_json::json!({"path": e.path, "message": e.message}))
                .collect();
            let _ = writeln!(out, "{}", serde_json::Value::Array(list));
        }
    }
    code
}

/// Checks a config file fully: structure, engine sections, secrets, integrations and channels.
pub fn check_config(file: &Path) -> Result<(), Vec<ConfigError>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![ConfigError {
            path: file.display().to_string(),
            message: e.to_string(),
        }]
    })?;
    let cfg = config::parse_as(&text, config::ConfigFormat::from_path(file))?;
    let secrets = config::resolve_secrets(&cfg, &|n| std::env::var(n).ok())?;
    let mut errors = Vec::new();
    let registry = signalcraft_providers::sources::Registry::builtin();
    if let Err(e) = Integrations::from_config(
        &registry,
        &cfg.integrations,
        &secrets,
        cfg.server.body_limit_bytes,
    ) {
        errors.extend(e);
    }
    install_crypto_provider();
    if let Err(ServerError::Config(e)) = build_channels(&cfg, &secrets, None) {
        errors.extend(e);
    }
    if let Some(dir) = &cfg.retention.archive_dir
        && let Err(e) = check_archive_dir(dir)
    {
        errors.push(ConfigError {
            path: "retention.archive_dir".into(),
            message: format!("{}: {e}", dir.display()),
        });
    }
    if let Err(e) = cfg.delivery.validate() {
        errors.push(ConfigError {
            path: "delivery".into(),
            message: e.to_string(),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// `[retention] archive_dir` as far as it can be checked without creating it: an
/// existing directory must take a new file; a missing one needs its nearest existing
/// ancestor to be a writable directory (the server creates it at start).
fn check_archive_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return crate::retention::check_writable(dir);
    }
    let mut parent = dir.parent();
    while let Some(p) = parent {
        // A relative path's last parent is "": the working directory, checked last.
        let (p, last) = if p.as_os_str().is_empty() {
            (Path::new("."), true)
        } else {
            (p, false)
        };
        if p.exists() {
            return crate::retention::check_writable(p).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot be created in {}: {e}", p.display()),
                )
            });
        }
        if last {
            break;
        }
        parent = p.parent();
    }
    Ok(())
}
