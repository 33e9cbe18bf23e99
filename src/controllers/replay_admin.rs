//! Publisher admin: `POST /admin/replay {aggregate_type?, ids?}` queues snapshot events of the
//! current state (202); the relay publishes them like any other event.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::controllers::ApiError;
#[allow(unused_imports)]
use crate::controllers::openapi::{Problem, ReplayBody};
use crate::controllers::request_id::RequestId;
use crate::controllers::state::PublisherState;
use crate::rabbitmq::envelope::AggregateType;
use crate::services::replay::{ReplayRequest, replay};
use crate::services::validation::{FieldError, parse_uuid};

/// Reads the optional body: `{"aggregate_type": "user"|"course", "ids": [uuid, ...]}`.
fn parse(body: &[u8]) -> Result<(Option<AggregateType>, Option<Vec<uuid::Uuid>>), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, None));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )]));
    };
    let mut errors: Vec<FieldError> = obj
        .keys()
        .filter(|k| !["aggregate_type", "ids"].contains(&k.as_str()))
        .map(|k| FieldError::new(k.clone(), "unknown field"))
        .collect();
    let aggregate = match obj.get("aggregate_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "user" => Some(AggregateType::User),
        Some(Value::String(s)) if s == "course" => Some(AggregateType::Course),
        Some(_) => {
            errors.push(FieldError::new(
                "aggregate_type",
                "must be `user` or `course`",
            ));
            None
        }
    };
    let ids = match obj.get("ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let parsed: Result<Vec<_>, _> = a
                .iter()
                .map(|v| parse_uuid(v.as_str().unwrap_or_default()))
                .collect();
            match parsed {
                Ok(ids) => Some(ids),
                Err(m) => {
                    errors.push(FieldError::new("ids", m));
                    None
                }
            }
        }
        Some(_) => {
            errors.push(FieldError::new("ids", "must be an array of UUIDs"));
            None
        }
    };
    if errors.is_empty() {
        Ok((aggregate, ids))
    } else {
        Err(ApiError::Invalid(errors))
    }
}

/// Queues snapshot events of the current state.
#[utoipa::path(post, path = "/admin/replay", tag = "admin", security(("admin_token" = [])), request_body(content = Option<ReplayBody>, content_type = "application/json"), responses((status = 202, description = "Replay queued"), (status = 401, description = "Missing or wrong token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Admin disabled", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Invalid body", body = Problem, content_type = "application/problem+json")))]
pub async fn start(
    state: web::Data<PublisherState>,
    req: HttpRequest,
    rid: RequestId,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.admin.check(&req)?;
    let (aggregate, ids) = parse(&body)?;
    let request = ReplayRequest {
        aggregate,
        ids,
        chunk: 500,
        pause: Duration::from_millis(50),
        correlation_id: rid.0.clone(),
    };
    let st = state.clone();
    tokio::spawn(async move {
        if let Err(e) = replay(&st.db, &request, Some(&st.relay_wake)).await {
            tracing::error!(error = %e, correlation_id = %request.correlation_id, "replay failed");
        }
    });
    Ok(HttpResponse::Accepted().json(json!({
        "status": "queued",
        "aggregate_type": aggregate.map(AggregateType::as_str),
        "correlation_id": rid.0,
    })))
}

/// Registers the replay route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/replay", web::post().to(start));
}
