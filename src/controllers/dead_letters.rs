//! Subscriber admin: list, retry and delete parked messages.

use actix_web::{HttpRequest, HttpResponse, web};
use lapin::options::ConfirmSelectOptions;

use crate::controllers::ApiError;
use crate::controllers::pagination::{page_request, path_id};
use crate::controllers::state::SubscriberState;
use crate::rabbitmq::parking::ParkingError;
use crate::services::page::Page;

async fn list(
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

async fn retry(
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

async fn delete(
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
