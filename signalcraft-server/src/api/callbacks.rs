//! Vendor callbacks: Slack interactivity and Twilio SMS replies, voice keypresses and
//! delivery status. Every request is signature-verified with the channels crate's
//! functions before anything is parsed; a forged or stale request gets 401 and is
//! logged without the secret or the signature.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use signalcraft_core::engine::IncidentAction as CoreAction;
use signalcraft_core::incident::Actor;
use signalcraft_providers::channels::{
    CallbackError, ExternalActor, IncidentAction, IncidentActionRequest, IncidentSelector, slack,
    twilio,
};

use crate::api::integrations::request_url;
use crate::error::ApiError;
use crate::extract::read_body;
use crate::state::AppState;

/// `/callbacks/slack`, `/callbacks/twilio/{status,sms,voice}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/callbacks/slack", post(slack_interaction))
        .route("/callbacks/twilio/status", post(twilio_status))
        .route("/callbacks/twilio/sms", post(twilio_sms))
        .route("/callbacks/twilio/voice", post(twilio_voice))
}

fn callback_problem(vendor: &str, e: &CallbackError) -> ApiError {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    if status == StatusCode::UNAUTHORIZED {
        // The error names the failed check, never the secret or the signature value.
        tracing::warn!(vendor, error = %e, "callback rejected: not authentic");
        ApiError::bad_signature(format!("{vendor} callback rejected: {e}"))
    } else {
        ApiError::new(status, "bad-callback", format!("{vendor} callback: {e}"))
    }
}

/// Maps a channel identity to the acting user (configured maps), or an integration actor.
fn actor_for(s: &AppState, a: &ExternalActor) -> Actor {
    let mapped = match a.channel.as_str() {
        "slack" => s.config.slack.users.get(&a.id),
        _ => s.config.twilio.users.get(&a.id),
    };
    match mapped {
        Some(u) => Actor::user(u.clone()),
        None => Actor::integration(format!("{}:{}", a.channel, a.id)),
    }
}

/// Applies a verified action; returns the incident's id and number.
async fn apply(s: &AppState, req: &IncidentActionRequest) -> Result<(String, u64), ApiError> {
    let id = match &req.incident {
        IncidentSelector::Id(id) => id.clone(),
        IncidentSelector::Number(n) => n.to_string(),
    };
    let actor = actor_for(s, &req.actor);
    let action = match req.action {
        IncidentAction::Acknowledge => CoreAction::Acknowledge,
        IncidentAction::Resolve => CoreAction::Resolve,
        IncidentAction::Escalate => {
            let inc = s.engine.engine.escalate_now(&id, actor).await?;
            return Ok((inc.id, inc.number));
        }
    };
    let inc = s.engine.act(&id, action, actor).await?;
    Ok((inc.id, inc.number))
}

/// `POST /callbacks/slack`: a Block Kit button click (Acknowledge / Resolve).
#[utoipa::path(
    post,
    path = "/callbacks/slack",
    tag = "callbacks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "payload=<interaction JSON>"),
    responses(
        (status = 200, description = "Action applied"),
        (status = 401, description = "Signature missing, wrong or stale", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn slack_interaction(State(s): State<AppState>, req: Request) -> Response {
    let Some(secret) = s.secrets.slack_signing_secret.clone() else {
        return ApiError::not_found("callback", "/callbacks/slack (no [slack].signing_secret)")
            .into_response();
    };
    let headers = req.headers().clone();
    let body = match read_body(req, &s).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let parsed = slack::handle_interaction(&headers, &body, s.now(), secret.expose().as_bytes());
    let req = match parsed {
        Ok(r) => r,
        Err(e) => return callback_problem("slack", &e).into_response(),
    };
    match apply(&s, &req).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

fn twilio_url(s: &AppState, headers: &HeaderMap, path_and_query: &str) -> String {
    match &s.config.twilio.callback_base_url {
        Some(b) => format!("{}{}", b.trim_end_matches('/'), path_and_query),
        None => request_url(s, headers, path_and_query),
    }
}

async fn twilio_parts(
    s: &AppState,
    req: Request,
) -> Result<(HeaderMap, bytes::Bytes, String, crate::secret::Secret), ApiError> {
    let Some(token) = s.secrets.twilio_auth_token.clone() else {
        return Err(ApiError::not_found(
            "callback",
            "/callbacks/twilio (no [twilio].auth_token)",
        ));
    };
    let headers = req.headers().clone();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let url = twilio_url(s, &headers, &pq);
    let body = read_body(req, s).await?;
    Ok((headers, body, url, token))
}

fn twiml(text: &str) -> Response {
    let esc = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        [(header::CONTENT_TYPE, "application/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{esc}</Response>"),
    )
        .into_response()
}

/// `POST /callbacks/twilio/sms`: an SMS reply (`ack 123`, `resolve 123`, `escalate 123`).
#[utoipa::path(
    post,
    path = "/callbacks/twilio/sms",
    tag = "callbacks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML reply"),
        (status = 401, description = "Bad X-Twilio-Signature", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn twilio_sms(State(s): State<AppState>, req: Request) -> Response {
    let (headers, body, url, token) = match twilio_parts(&s, req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let parsed = twilio::handle_sms_reply(&headers, &body, &url, token.expose().as_bytes());
    let req = match parsed {
        Ok(r) => r,
        Err(e @ CallbackError::UnknownCommand(_)) => {
            return twiml(&format!(
                "<Message>Unrecognised command ({e}). Reply \"ack 123\", \"resolve 123\" or \"escalate 123\".</Message>"
            ));
        }
        Err(e) => return callback_problem("twilio", &e).into_response(),
    };
    match apply(&s, &req).await {
        Ok((_, n)) => {
            let verb = match req.action {
                IncidentAction::Acknowledge => "Acknowledged",
                IncidentAction::Escalate => "Escalated",
                _ => "Resolved",
            };
            twiml(&format!("<Message>{verb} incident #{n}.</Message>"))
        }
        Err(e) => twiml(&format!("<Message>Could not apply: {}</Message>", e.detail)),
    }
}

/// `POST /callbacks/twilio/voice`: keypress of a paging call (1 = acknowledge, 2 = escalate now).
#[utoipa::path(
    post,
    path = "/callbacks/twilio/voice",
    tag = "callbacks",
    params(("incident" = String, Query, description = "Incident id the call was about")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML reply"),
        (status = 401, description = "Bad X-Twilio-Signature", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn twilio_voice(State(s): State<AppState>, req: Request) -> Response {
    let (headers, body, url, token) = match twilio_parts(&s, req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let req = match twilio::handle_dtmf(&headers, &body, &url, token.expose().as_bytes()) {
        Ok(r) => r,
        Err(e @ CallbackError::UnknownCommand(_)) => {
            return twiml(&format!("<Say>Unrecognised key: {e}.</Say>"));
        }
        Err(e) => return callback_problem("twilio", &e).into_response(),
    };
    match apply(&s, &req).await {
        Ok((_, n)) => {
            let verb = match req.action {
                IncidentAction::Escalate => "escalated to the next level",
                IncidentAction::Resolve => "resolved",
                _ => "acknowledged",
            };
            twiml(&format!("<Say>Incident {n} {verb}. Goodbye.</Say>"))
        }
        Err(e) => twiml(&format!("<Say>{}</Say>", e.detail)),
    }
}

/// `POST /callbacks/twilio/status`: message/call delivery status.
#[utoipa::path(
    post,
    path = "/callbacks/twilio/status",
    tag = "callbacks",
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Recorded"),
        (status = 401, description = "Bad X-Twilio-Signature", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn twilio_status(State(s): State<AppState>, req: Request) -> Response {
    let (headers, body, url, token) = match twilio_parts(&s, req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match twilio::handle_status_callback(&headers, &body, &url, token.expose().as_bytes()) {
        Ok(cb) => {
            s.engine.record_provider_status(&cb.sid, cb.status).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => callback_problem("twilio", &e).into_response(),
    }
}
