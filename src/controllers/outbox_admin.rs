//! Publisher admin: `GET /admin/outbox` shows the relay's backlog.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::controllers::ApiError;
use crate::controllers::state::PublisherState;
use crate::services::outbox;

async fn stats(
    state: web::Data<PublisherState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.admin.check(&req)?;
    Ok(HttpResponse::Ok().json(outbox::stats(&state.db).await?))
}

/// Registers the outbox admin route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/outbox", web::get().to(stats));
}
