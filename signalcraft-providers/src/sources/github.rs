//! GitHub repository webhooks: `deployment`, `deployment_status` and `push` (to the
//! default branch) become **change events** — context on incidents, never pages.
//!
//! The event name comes from `X-GitHub-Event`; `ping` and other events yield
//! `ProviderError::NothingToIngest`. Pushes to other branches, and branch deletions,
//! yield no events. The service hint and `repository` are the repository's
//! `html_url`, which is how the engine links changes to services.
//!
//! Authentication: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(webhook_secret, body)>`
//! (required secret `webhook_secret`). GitHub signs no timestamp, so there is no
//! replay window; `X-GitHub-Delivery` is unique per delivery for idempotency upstream.

use jiff::Timestamp;
use serde::Deserialize;
use signalcraft_core::model::{ChangeEvent, Event, Labels, Link};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, epoch_auto, first_line, parse_timestamp, put_label};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::secret::Secret;
use super::signature::{require_header, verify_hex_hmac};

const TYPE: &str = "github";

/// Options of a `github` integration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitHubConfig {
    /// Record pushes to every branch, not just the default branch. Default false.
    pub all_branches: bool,
}

#[derive(Debug, Deserialize)]
struct Repository {
    full_name: String,
    html_url: String,
    #[serde(default)]
    default_branch: Option<String>,
    /// In push payloads an epoch number; elsewhere an ISO string.
    #[serde(default)]
    pushed_at: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Commit {
    id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PushEvent {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    #[serde(default)]
    compare: Option<String>,
    #[serde(default)]
    commits: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    head_commit: Option<Commit>,
    repository: Repository,
    #[serde(default)]
    pusher: Option<User>,
}

#[derive(Debug, Deserialize)]
struct Deployment {
    id: i64,
    sha: String,
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    task: Option<String>,
    environment: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    creator: Option<User>,
    created_at: String,
    #[serde(default)]
    updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeploymentEvent {
    #[serde(default)]
    action: Option<String>,
    deployment: Deployment,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct DeploymentStatus {
    state: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    target_url: Option<String>,
    #[serde(default)]
    log_url: Option<String>,
    #[serde(default)]
    environment_url: Option<String>,
    created_at: String,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    creator: Option<User>,
}

#[derive(Debug, Deserialize)]
struct DeploymentStatusEvent {
    deployment_status: DeploymentStatus,
    deployment: Deployment,
    repository: Repository,
}

/// A `github` provider.
#[derive(Debug)]
pub struct GitHubProvider {
    common: Common,
    config: GitHubConfig,
    secret: Option<Secret>,
    verification: Verification,
}

fn link(href: Option<String>, text: &str) -> Option<Link> {
    href.filter(|h| !h.is_empty()).map(|href| Link {
        href,
        text: Some(text.into()),
    })
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn who(u: &Option<User>) -> &str {
    u.as_ref()
        .and_then(|u| u.login.as_deref().or(u.name.as_deref()))
        .unwrap_or("")
}

impl GitHubProvider {
    fn time(&self, field: &str, s: &str) -> Result<Timestamp, ProviderError> {
        parse_timestamp(s).ok_or_else(|| {
            self.common
                .malformed(field, format!("not a timestamp: {s:?}"))
        })
    }

    fn push(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (p, raw): (PushEvent, _) = self.common.decode_with_raw(&req.body)?;
        let Some(branch) = p.git_ref.strip_prefix("refs/heads/") else {
            return Ok(Vec::new()); // tags are not deploys
        };
        let default = p.repository.default_branch.as_deref().unwrap_or("");
        if p.deleted || (!self.config.all_branches && branch != default) {
            return Ok(Vec::new());
        }
        let timestamp = match (&p.head_commit, &p.repository.pushed_at) {
            (
                Some(Commit {
                    timestamp: Some(t), ..
                }),
                _,
            ) => self.time("$.head_commit.timestamp", t)?,
            (_, Some(serde_json::Value::Number(n))) => {
                n.as_i64().and_then(epoch_auto).ok_or_else(|| {
                    self.common
                        .malformed("$.repository.pushed_at", "out of range")
                })?
            }
            _ => req.received_at.ok_or_else(|| {
                self.common
                    .malformed("$.head_commit.timestamp", "missing and no receive time")
            })?,
        };
        let n = p.commits.len();
        let head_msg = p
            .head_commit
            .as_ref()
            .map(|c| first_line(&c.message, 200))
            .unwrap_or_default();
        let summary = format!(
            "{} pushed {n} commit{} to {}@{branch}{}{}",
            if who(&p.pusher).is_empty() {
                "someone"
            } else {
                who(&p.pusher)
            },
            if n == 1 { "" } else { "s" },
            p.repository.full_name,
            if head_msg.is_empty() { "" } else { ": " },
            head_msg
        );
        let mut labels = Labels::new();
        put_label(&mut labels, "repository", &p.repository.full_name);
        put_label(&mut labels, "branch", branch);
        put_label(&mut labels, "sha", &p.after);
        put_label(&mut labels, "change_type", "push");
        if p.forced {
            put_label(&mut labels, "forced", "true");
        }
        let links = [
            link(p.head_commit.as_ref().and_then(|c| c.url.clone()), "Commit"),
            link(p.compare, "Compare"),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(vec![Event::Change(ChangeEvent {
            source: self.common.source.clone(),
            summary,
            timestamp,
            service: Some(p.repository.html_url.clone()),
            repository: Some(p.repository.html_url),
            labels,
            links,
            details: serde_json::json!({
                "pusher": who(&p.pusher),
                "commits": n,
                "head_commit": p.head_commit.as_ref().map(|c| c.id.clone()),
            }),
            raw,
        })])
    }

    fn deployment_labels(d: &Deployment, repo: &Repository) -> Labels {
        let mut labels = Labels::new();
        put_label(&mut labels, "repository", &repo.full_name);
        put_label(&mut labels, "environment", &d.environment);
        put_label(&mut labels, "ref", &d.git_ref);
        put_label(&mut labels, "sha", &d.sha);
        put_label(&mut labels, "task", d.task.as_deref().unwrap_or(""));
        labels
    }

    fn deployment(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (e, raw): (DeploymentEvent, _) = self.common.decode_with_raw(&req.body)?;
        let d = &e.deployment;
        let mut labels = Self::deployment_labels(d, &e.repository);
        put_label(&mut labels, "change_type", "deployment");
        let summary = format!(
            "Deployment of {} ({}) to {} {} by {}",
            d.git_ref,
            short(&d.sha),
            d.environment,
            e.action.as_deref().unwrap_or("created"),
            if who(&d.creator).is_empty() {
                "unknown"
            } else {
                who(&d.creator)
            },
        );
        Ok(vec![Event::Change(ChangeEvent {
            source: self.common.source.clone(),
            summary,
            timestamp: self.time("$.deployment.created_at", &d.created_at)?,
            service: Some(e.repository.html_url.clone()),
            repository: Some(e.repository.html_url.clone()),
            labels,
            links: vec![Link {
                href: format!("{}/commit/{}", e.repository.html_url, d.sha),
                text: Some("Commit".into()),
            }],
            details: serde_json::json!({
                "deployment_id": d.id,
                "description": d.description,
                "updated_at": d.updated_at,
            }),
            raw,
        })])
    }

    fn deployment_status(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (e, raw): (DeploymentStatusEvent, _) = self.common.decode_with_raw(&req.body)?;
        let (s, d) = (&e.deployment_status, &e.deployment);
        let env = s.environment.as_deref().unwrap_or(&d.environment);
        let mut labels = Self::deployment_labels(d, &e.repository);
        put_label(&mut labels, "environment", env);
        put_label(&mut labels, "state", &s.state);
        put_label(&mut labels, "change_type", "deployment_status");
        let verb = match s.state.as_str() {
            "success" => "succeeded",
            "failure" => "failed",
            "error" => "errored",
            "inactive" => "became inactive",
            "in_progress" => "in progress",
            "queued" => "queued",
            "pending" => "pending",
            other => other,
        };
        let summary = format!(
            "Deployment of {} ({}) to {env} {verb}",
            d.git_ref,
            short(&d.sha)
        );
        let at = s.updated_at.as_deref().unwrap_or(&s.created_at);
        let links = [
            link(s.environment_url.clone(), "Environment"),
            link(s.log_url.clone(), "Logs"),
            link(s.target_url.clone(), "Target"),
            Some(Link {
                href: format!("{}/commit/{}", e.repository.html_url, d.sha),
                text: Some("Commit".into()),
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(vec![Event::Change(ChangeEvent {
            source: self.common.source.clone(),
            summary,
            timestamp: self.time("$.deployment_status.updated_at", at)?,
            service: Some(e.repository.html_url.clone()),
            repository: Some(e.repository.html_url.clone()),
            labels,
            links,
            details: serde_json::json!({
                "deployment_id": d.id,
                "description": s.description,
                "creator": who(&s.creator),
            }),
            raw,
        })])
    }
}

impl Provider for GitHubProvider {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn verify(&self, req: &InboundRequest, _now: Timestamp) -> Result<(), ProviderError> {
        match (&self.verification, &self.secret) {
            (Verification::Skip, _) => Ok(()),
            (Verification::Verify, Some(key)) => verify_hex_hmac(
                TYPE,
                req,
                "X-Hub-Signature-256",
                "sha256=",
                key,
                &[&req.body],
            ),
            (Verification::Verify, None) => Err(ProviderError::InvalidConfig {
                provider: TYPE.into(),
                field: "secrets.webhook_secret".into(),
                message: "required secret is missing".into(),
            }),
        }
    }

    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        self.common.check_size(&req.body)?;
        let event = require_header(TYPE, req, "X-GitHub-Event")?.trim();
        match event {
            "push" => self.push(req),
            "deployment" => self.deployment(req),
            "deployment_status" => self.deployment_status(req),
            "ping" => Err(ProviderError::NothingToIngest {
                provider: TYPE.into(),
                message: "ping: the webhook is set up".into(),
            }),
            other => Err(ProviderError::NothingToIngest {
                provider: TYPE.into(),
                message: format!(
                    "event {other:?} is not ingested (only push, deployment, deployment_status)"
                ),
            }),
        }
    }
}

/// The `github` source type.
#[derive(Debug, Clone, Copy, Default)]
pub struct GitHubType;

impl SourceType for GitHubType {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&["webhook_secret"], &[])
    }

    fn primary_secret(&self) -> Option<&'static str> {
        Some("webhook_secret")
    }

    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let config: GitHubConfig = integration.options_as(TYPE)?;
        if verification == Verification::Verify {
            integration.check_secrets(TYPE, &["webhook_secret"], &[])?;
        }
        Ok(Box::new(GitHubProvider {
            common: Common::new(TYPE, integration),
            config,
            secret: integration.secret("webhook_secret").cloned(),
            verification,
        }))
    }
}
