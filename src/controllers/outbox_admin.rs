//! Publisher admin: `GET /admin/outbox` shows the relay's backlog.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::controllers::ApiError;
#[allow(unused_imports)]
use crate::controllers::openapi::{OutboxBacklog, Problem};
use crate::controllers::state::PublisherState;
use crate::services::outbox;

/// The relay's backlog.
#[utoipa::path(get, path = "/admin/outbox", tag = "admin", security(("admin_token" = [])), responses((status = 200, description = "Backlog", body = OutboxBacklog), (status = 401, description = "Missing or wrong token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Admin disabled (no token configured)", body = Problem, content_type = "application/problem+json")))]
pub async fn stats(
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
