//! `/api/courses`: create, read, list, replace, patch, delete.

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::controllers::ApiError;
use crate::controllers::json_body::JsonBody;
use crate::controllers::pagination::{page_request, path_id};
use crate::controllers::preconditions::{etag, if_match};
use crate::controllers::problem::method_not_allowed;
use crate::controllers::request_id::RequestId;
use crate::controllers::state::PublisherState;
use crate::services::courses;
use crate::services::validation::{Completeness, parse_course};

async fn create(
    state: web::Data<PublisherState>,
    rid: RequestId,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let input = parse_course(&body.0, Completeness::Full).map_err(ApiError::Invalid)?;
    let course = courses::create(&state.db, input, &state.write_ctx(&rid)).await?;
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/courses/{}", course.id)))
        .insert_header(etag(course.version))
        .json(course))
}

async fn get(
    state: web::Data<PublisherState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let course = courses::get(&state.db, path_id(&id)?).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(course.version))
        .json(course))
}

async fn list(
    state: web::Data<PublisherState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (page, _) = page_request(&req)?;
    Ok(HttpResponse::Ok().json(courses::list(&state.db, page).await?))
}

async fn write(
    state: &PublisherState,
    req: &HttpRequest,
    rid: &RequestId,
    id: &str,
    body: JsonBody,
    mode: Completeness,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(id)?;
    let input = parse_course(&body.0, mode).map_err(ApiError::Invalid)?;
    let expected = if_match(req)?;
    let course = courses::update(&state.db, id, input, expected, &state.write_ctx(rid)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(course.version))
        .json(course))
}

async fn replace(
    state: web::Data<PublisherState>,
    req: HttpRequest,
    rid: RequestId,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write(&state, &req, &rid, &id, body, Completeness::Full).await
}

async fn patch(
    state: web::Data<PublisherState>,
    req: HttpRequest,
    rid: RequestId,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write(&state, &req, &rid, &id, body, Completeness::Partial).await
}

async fn delete(
    state: web::Data<PublisherState>,
    req: HttpRequest,
    rid: RequestId,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    let expected = if_match(&req)?;
    courses::delete(&state.db, id, expected, &state.write_ctx(&rid)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers the course routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/courses")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/courses/{id}")
            .route(web::get().to(get))
            .route(web::put().to(replace))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    );
}
