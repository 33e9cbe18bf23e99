//! `/api/users`: create, read, list, replace, patch, delete.

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::controllers::ApiError;
use crate::controllers::json_body::JsonBody;
#[allow(unused_imports)]
use crate::controllers::openapi::{Problem, User, UserBody, UserPage, UserPatch};
use crate::controllers::pagination::{page_request, path_id};
use crate::controllers::preconditions::{etag, if_match};
use crate::controllers::problem::method_not_allowed;
use crate::controllers::request_id::RequestId;
use crate::controllers::state::PublisherState;
use crate::services::users;
use crate::services::validation::{Completeness, parse_user};

/// Creates a user (version 1) and its `user.created` event.
#[utoipa::path(post, path = "/api/users", tag = "users",
    request_body(content = UserBody, content_type = "application/json"),
    params(("X-Request-Id" = Option<String>, Header, description = "Becomes the event's correlation_id")),
    responses(
        (status = 201, description = "Created", body = User,
            headers(("Location" = String, description = "The new user's URL"), ("ETag" = String, description = "\"1\""))),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body exceeds 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The request does not fit the contract", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is taken", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    state: web::Data<PublisherState>,
    rid: RequestId,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let input = parse_user(&body.0, Completeness::Full).map_err(ApiError::Invalid)?;
    let user = users::create(&state.db, input, &state.write_ctx(&rid)).await?;
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/users/{}", user.id)))
        .insert_header(etag(user.version))
        .json(user))
}

/// Reads one user.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = User, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    state: web::Data<PublisherState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = users::get(&state.db, path_id(&id)?).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(user.version))
        .json(user))
}

/// Lists users in creation order, keyset-paginated.
#[utoipa::path(get, path = "/api/users", tag = "users",
    params(
        ("limit" = Option<u64>, Query, description = "1..=500, default 50"),
        ("cursor" = Option<uuid::Uuid>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = UserPage),
        (status = 422, description = "limit or cursor out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    state: web::Data<PublisherState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (page, _) = page_request(&req)?;
    Ok(HttpResponse::Ok().json(users::list(&state.db, page).await?))
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
    let input = parse_user(&body.0, mode).map_err(ApiError::Invalid)?;
    let expected = if_match(req)?;
    let user = users::update(&state.db, id, input, expected, &state.write_ctx(rid)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(user.version))
        .json(user))
}

/// Replaces every field of a user (version + 1).
#[utoipa::path(put, path = "/api/users/{id}", tag = "users",
    request_body(content = UserBody, content_type = "application/json"),
    params(("id" = uuid::Uuid, Path, description = "User id"),
           ("If-Match" = Option<String>, Header, description = "Quoted version the change is based on")),
    responses(
        (status = 200, description = "Updated", body = User, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body exceeds 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The request does not fit the contract", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with another row", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names another version", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn replace(
    state: web::Data<PublisherState>,
    req: HttpRequest,
    rid: RequestId,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write(&state, &req, &rid, &id, body, Completeness::Full).await
}

/// Changes some fields of a user (version + 1).
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users",
    request_body(content = UserPatch, content_type = "application/json"),
    params(("id" = uuid::Uuid, Path, description = "User id"),
           ("If-Match" = Option<String>, Header, description = "Quoted version the change is based on")),
    responses(
        (status = 200, description = "Updated", body = User, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body exceeds 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The request does not fit the contract", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with another row", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names another version", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch(
    state: web::Data<PublisherState>,
    req: HttpRequest,
    rid: RequestId,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write(&state, &req, &rid, &id, body, Completeness::Partial).await
}

/// Deletes a user; the event carries the last state at version + 1.
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id"),
           ("If-Match" = Option<String>, Header, description = "Quoted version the delete is based on")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Dependent rows exist", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names another version", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    state: web::Data<PublisherState>,
    req: HttpRequest,
    rid: RequestId,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    let expected = if_match(&req)?;
    users::delete(&state.db, id, expected, &state.write_ctx(&rid)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Registers the user routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/users")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/users/{id}")
            .route(web::get().to(get))
            .route(web::put().to(replace))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    );
}
