//! GitLab project webhooks: Deployment and Pipeline events.
//!
//! * Deployment events (`object_kind: deployment`) with status `success`, `failed` or
//!   `canceled` become change events (`running`/`created` yield none).
//! * Pipeline events (`object_kind: pipeline`) on the project's default branch with a
//!   final status (`success`, `failed`, `canceled`) become change events. With
//!   `page_on_failed_pipeline`, a failed default-branch pipeline instead becomes a
//!   firing alert keyed `gitlab-pipeline:<project id>:<ref>`, and the next successful
//!   one resolves it (plus its change event).
//!
//! The service hint and `repository` are the project's `web_url`.
//!
//! Authentication: `X-Gitlab-Token` equals secret `token`, compared in constant time.

use jiff::Timestamp;
use serde::Deserialize;
use signalcraft_core::model::{Alert, AlertStatus, ChangeEvent, Event, Labels, Link, Severity};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, first_line, parse_timestamp, put_label};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::secret::Secret;
use super::signature::{bad_signature, ct_eq, require_header};

const TYPE: &str = "gitlab";

/// Options of a `gitlab` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitLabConfig {
    /// A failed pipeline on the default branch pages (firing alert). Default false.
    pub page_on_failed_pipeline: bool,
    /// Severity of that alert. Default `error`.
    pub pipeline_severity: Severity,
}

impl Default for GitLabConfig {
    fn default() -> Self {
        GitLabConfig {
            page_on_failed_pipeline: false,
            pipeline_severity: Severity::Error,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Project {
    id: i64,
    #[serde(default)]
    name: String,
    web_url: String,
    #[serde(default)]
    path_with_namespace: String,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Kind<'a> {
    #[serde(borrow)]
    object_kind: std::borrow::Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct DeploymentHook {
    status: String,
    #[serde(default)]
    status_changed_at: Option<String>,
    #[serde(default)]
    deployment_id: Option<i64>,
    #[serde(default)]
    deployable_url: Option<String>,
    environment: String,
    #[serde(default)]
    environment_external_url: Option<String>,
    project: Project,
    #[serde(default)]
    short_sha: String,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    commit_url: Option<String>,
    #[serde(default)]
    commit_title: Option<String>,
    #[serde(rename = "ref", default)]
    git_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PipelineAttributes {
    id: i64,
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    tag: bool,
    sha: String,
    status: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PipelineCommit {
    #[serde(default)]
    message: String,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PipelineHook {
    object_attributes: PipelineAttributes,
    project: Project,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    commit: Option<PipelineCommit>,
}

/// A `gitlab` provider.
#[derive(Debug)]
pub struct GitLabProvider {
    common: Common,
    config: GitLabConfig,
    token: Option<Secret>,
    verification: Verification,
}

fn user_name(u: &Option<User>) -> &str {
    u.as_ref()
        .and_then(|u| u.username.as_deref().or(u.name.as_deref()))
        .unwrap_or("")
}

fn link(href: &Option<String>, text: &str) -> Option<Link> {
    href.as_ref().filter(|h| !h.is_empty()).map(|h| Link {
        href: h.clone(),
        text: Some(text.into()),
    })
}

impl GitLabProvider {
    fn time(
        &self,
        field: &str,
        s: Option<&str>,
        req: &InboundRequest,
    ) -> Result<Timestamp, ProviderError> {
        match s {
            Some(s) => parse_timestamp(s).ok_or_else(|| {
                self.common
                    .malformed(field, format!("not a timestamp: {s:?}"))
            }),
            None => req
                .received_at
                .ok_or_else(|| self.common.malformed(field, "missing and no receive time")),
        }
    }

    fn deployment(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (d, raw): (DeploymentHook, _) = self.common.decode_with_raw(&req.body)?;
        if !matches!(d.status.as_str(), "success" | "failed" | "canceled") {
            return Ok(Vec::new());
        }
        let mut labels = Labels::new();
        put_label(&mut labels, "project", &d.project.path_with_namespace);
        put_label(&mut labels, "environment", &d.environment);
        put_label(&mut labels, "status", &d.status);
        put_label(&mut labels, "ref", d.git_ref.as_deref().unwrap_or(""));
        put_label(&mut labels, "sha", &d.short_sha);
        put_label(&mut labels, "change_type", "deployment");
        let title = d
            .commit_title
            .as_deref()
            .map(|t| first_line(t, 200))
            .unwrap_or_default();
        let summary = format!(
            "Deployment of {} to {} {}{}{}",
            if d.short_sha.is_empty() {
                &d.project.name
            } else {
                &d.short_sha
            },
            d.environment,
            d.status,
            if title.is_empty() { "" } else { ": " },
            title
        );
        let links = [
            link(&d.commit_url, "Commit"),
            link(&d.deployable_url, "Job"),
            link(&d.environment_external_url, "Environment"),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(vec![Event::Change(ChangeEvent {
            source: self.common.source.clone(),
            summary,
            timestamp: self.time("$.status_changed_at", d.status_changed_at.as_deref(), req)?,
            service: Some(d.project.web_url.clone()),
            repository: Some(d.project.web_url.clone()),
            labels,
            links,
            details: serde_json::json!({
                "deployment_id": d.deployment_id,
                "user": user_name(&d.user),
                "project_id": d.project.id,
            }),
            raw,
        })])
    }

    fn pipeline(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (p, raw): (PipelineHook, _) = self.common.decode_with_raw(&req.body)?;
        let a = &p.object_attributes;
        let default = p.project.default_branch.as_deref().unwrap_or("");
        if a.tag
            || a.git_ref != default
            || !matches!(a.status.as_str(), "success" | "failed" | "canceled")
        {
            return Ok(Vec::new());
        }
        let mut labels = Labels::new();
        put_label(&mut labels, "project", &p.project.path_with_namespace);
        put_label(&mut labels, "ref", &a.git_ref);
        put_label(&mut labels, "sha", &a.sha);
        put_label(&mut labels, "status", &a.status);
        let links: Vec<Link> = [
            link(&a.url, "Pipeline"),
            link(&p.commit.as_ref().and_then(|c| c.url.clone()), "Commit"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let message = p
            .commit
            .as_ref()
            .map(|c| first_line(&c.message, 200))
            .unwrap_or_default();
        let summary = format!(
            "Pipeline #{} on {}@{} {}{}{}",
            a.id,
            p.project.path_with_namespace,
            a.git_ref,
            a.status,
            if message.is_empty() { "" } else { ": " },
            message
        );
        let at = self.time(
            "$.object_attributes.finished_at",
            a.finished_at.as_deref().or(a.created_at.as_deref()),
            req,
        )?;
        let details = serde_json::json!({
            "pipeline_id": a.id,
            "source": a.source,
            "duration": a.duration,
            "user": user_name(&p.user),
            "project_id": p.project.id,
        });
        let mut out = Vec::new();
        let page = self.config.page_on_failed_pipeline;
        if page && matches!(a.status.as_str(), "failed" | "success") {
            let status = if a.status == "failed" {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            };
            let mut alert_labels = labels.clone();
            alert_labels.remove("sha");
            alert_labels.remove("status");
            out.push(Event::Alert(Alert {
                source: self.common.source.clone(),
                dedup_key: Some(format!("gitlab-pipeline:{}:{}", p.project.id, a.git_ref)),
                status,
                severity: self.config.pipeline_severity,
                summary: summary.clone(),
                details: details.clone(),
                labels: alert_labels,
                annotations: Default::default(),
                links: links.clone(),
                images: Vec::new(),
                starts_at: (status == AlertStatus::Firing).then_some(at),
                ends_at: (status == AlertStatus::Resolved).then_some(at),
                service: Some(p.project.web_url.clone()),
                raw: raw.clone(),
            }));
            if status == AlertStatus::Firing {
                return Ok(out);
            }
        }
        put_label(&mut labels, "change_type", "pipeline");
        out.push(Event::Change(ChangeEvent {
            source: self.common.source.clone(),
            summary,
            timestamp: at,
            service: Some(p.project.web_url.clone()),
            repository: Some(p.project.web_url),
            labels,
            links,
            details,
            raw,
        }));
        Ok(out)
    }
}

impl Provider for GitLabProvider {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn verify(&self, req: &InboundRequest, _now: Timestamp) -> Result<(), ProviderError> {
        match (&self.verification, &self.token) {
            (Verification::Skip, _) => Ok(()),
            (Verification::Verify, Some(want)) => {
                let got = require_header(TYPE, req, "X-Gitlab-Token")?;
                if ct_eq(got.as_bytes(), want.expose().as_bytes()) {
                    Ok(())
                } else {
                    Err(bad_signature(TYPE))
                }
            }
            (Verification::Verify, None) => Err(ProviderError::InvalidConfig {
                provider: TYPE.into(),
                field: "secrets.token".into(),
                message: "required secret is missing".into(),
            }),
        }
    }

    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        // A first, allocation-free pass finds object_kind; the hook's own type then
        // decodes the body.
        let kind: Kind = self.common.decode(&req.body)?;
        match kind.object_kind.as_ref() {
            "deployment" => self.deployment(req),
            "pipeline" => self.pipeline(req),
            other => Err(ProviderError::NothingToIngest {
                provider: TYPE.into(),
                message: format!(
                    "object_kind {other:?} is not ingested (only deployment, pipeline)"
                ),
            }),
        }
    }
}

/// The `gitlab` source type.
#[derive(Debug, Clone, Copy, Default)]
pub struct GitLabType;

impl SourceType for GitLabType {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&["token"], &[])
    }

    fn primary_secret(&self) -> Option<&'static str> {
        Some("token")
    }

    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let config: GitLabConfig = integration.options_as(TYPE)?;
        if verification == Verification::Verify {
            integration.check_secrets(TYPE, &["token"], &[])?;
        }
        Ok(Box::new(GitLabProvider {
            common: Common::new(TYPE, integration),
            config,
            token: integration.secret("token").cloned(),
            verification,
        }))
    }
}
