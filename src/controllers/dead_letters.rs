//! Subscriber admin: list, retry and delete parked messages.

use actix_web::{HttpRequest, HttpResponse, web};
use lapin::options::ConfirmSelectOptions;

use crate::controllers::ApiError;
#[allow(unused_imports)]
use crate::controllers::openapi::{DeadLetterPage, Problem};
use crate::controllers::pagination::{page_request, path_id};
use crate::controllers::state::SubscriberState;
use crate::rabbitmq::parking::ParkingError;
use crate::services::page::Page;

/// Parked messages, oldest first, optionally of one routing key.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "admin", security(("admin_token" = [])), params(("routing_key" = Option<String>, Query), ("limit" = Option<u64>, Query), ("cursor" = Option<uuid::Uuid>, Query)), responses((status = 200, description = "One page", body = DeadLetterPage), (status = 401, description = "Missing or wrong token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Admin disabled", body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    state: web::Data<SubscriberState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.admin.check(&req)?;
    let (page, rest) = page_request(&req)?;
    let routing_key = rest
        .iter()
        .find(|(k, _)| k == "routing_key")
        .map(|(_, v)| v.as_str());
    let rows = state
        .parking
        .list(routing_key, page.after, page.limit + 1)
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |d| d.id)))
}

/// Sends a parked message back to its queue (confirmed), then removes it.
#[utoipa::path(post, path = "/admin/dead-letters/{id}/retry", tag = "admin", security(("admin_token" = [])), params(("id" = uuid::Uuid, Path)), responses((status = 202, description = "Requeued"), (status = 401, description = "Missing or wrong token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such dead letter, or admin disabled", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Broker unreachable", body = Problem, content_type = "application/problem+json")))]
pub async fn retry(
    state: web::Data<SubscriberState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.admin.check(&req)?;
    let id = path_id(&id)?;
    let row = state
        .parking
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    let conn = state
        .amqp
        .get()
        .await
        .map_err(|e| ApiError::Unavailable(format!("broker unreachable: {e}")))?;
    let channel = conn
        .create_channel()
        .await
        .map_err(|e| ApiError::Unavailable(format!("broker: {e}")))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| ApiError::Unavailable(format!("broker: {e}")))?;
    let result = state.parking.retry(&channel, &row).await;
    let _ = channel.close(200, "retried".into()).await;
    match result {
        Ok(()) => Ok(HttpResponse::Accepted().json(serde_json::json!({
            "id": id, "requeued_to": row.source_queue
        }))),
        Err(ParkingError::Database(e)) => Err(e.into()),
        Err(ParkingError::Broker(e)) => Err(ApiError::Unavailable(e.to_string())),
    }
}

/// Removes a parked message.
#[utoipa::path(delete, path = "/admin/dead-letters/{id}", tag = "admin", security(("admin_token" = [])), params(("id" = uuid::Uuid, Path)), responses((status = 204, description = "Removed"), (status = 401, description = "Missing or wrong token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such dead letter, or admin disabled", body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    state: web::Data<SubscriberState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.admin.check(&req)?;
    let id = path_id(&id)?;
    if state.parking.delete(id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("no dead letter {id}")))
    }
}

/// Registers the dead-letter admin routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/dead-letters", web::get().to(list))
        .route("/admin/dead-letters/{id}/retry", web::post().to(retry))
        .route("/admin/dead-letters/{id}", web::delete().to(delete));
}
