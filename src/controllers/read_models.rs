//! The subscriber's read API: profiles and the course catalog, as the projections hold them.

use actix_web::{HttpRequest, HttpResponse, web};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::controllers::ApiError;
#[allow(unused_imports)]
use crate::controllers::openapi::{CatalogEntry, CatalogPage, Problem, Profile, ProfilePage};
use crate::controllers::pagination::{page_request, path_id};
use crate::controllers::state::SubscriberState;
use crate::entities::subscriber::{course_catalog, profiles};
use crate::services::page::Page;
use crate::services::validation::{FieldError, parse_uuid};

/// One live profile.
#[utoipa::path(get, path = "/api/profiles/{id}", tag = "read models", params(("id" = uuid::Uuid, Path, description = "User id")), responses((status = 200, description = "The profile", body = Profile), (status = 404, description = "Absent or deleted", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Malformed id", body = Problem, content_type = "application/problem+json")))]
pub async fn profile(
    state: web::Data<SubscriberState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    match profiles::Entity::find_by_id(id).one(&state.db).await? {
        Some(p) if !p.deleted => Ok(HttpResponse::Ok().json(p)),
        Some(p) => Err(ApiError::NotFound(format!(
            "profile {id} was deleted (version {})",
            p.source_version
        ))),
        None => Err(ApiError::NotFound(format!("no profile {id}"))),
    }
}

/// Live profiles, keyset-paginated.
#[utoipa::path(get, path = "/api/profiles", tag = "read models", params(("limit" = Option<u64>, Query), ("cursor" = Option<uuid::Uuid>, Query)), responses((status = 200, description = "One page", body = ProfilePage), (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json")))]
pub async fn profiles_list(
    state: web::Data<SubscriberState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (page, _) = page_request(&req)?;
    let mut q = profiles::Entity::find()
        .filter(profiles::Column::Deleted.eq(false))
        .order_by_asc(profiles::Column::UserId);
    if let Some(after) = page.after {
        q = q.filter(profiles::Column::UserId.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(&state.db).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |p| p.user_id)))
}

/// One live catalog entry.
#[utoipa::path(get, path = "/api/catalog/courses/{id}", tag = "read models", params(("id" = uuid::Uuid, Path, description = "Course id")), responses((status = 200, description = "The entry", body = CatalogEntry), (status = 404, description = "Absent or deleted", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Malformed id", body = Problem, content_type = "application/problem+json")))]
pub async fn course(
    state: web::Data<SubscriberState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id)?;
    match course_catalog::Entity::find_by_id(id)
        .one(&state.db)
        .await?
    {
        Some(c) if !c.deleted => Ok(HttpResponse::Ok().json(c)),
        Some(c) => Err(ApiError::NotFound(format!(
            "course {id} was deleted (version {})",
            c.source_version
        ))),
        None => Err(ApiError::NotFound(format!(
            "no catalog entry for course {id}"
        ))),
    }
}

/// Live catalog entries, optionally of one instructor.
#[utoipa::path(get, path = "/api/catalog/courses", tag = "read models", params(("instructor_id" = Option<uuid::Uuid>, Query), ("limit" = Option<u64>, Query), ("cursor" = Option<uuid::Uuid>, Query)), responses((status = 200, description = "One page", body = CatalogPage), (status = 422, description = "Bad parameter", body = Problem, content_type = "application/problem+json")))]
pub async fn courses_list(
    state: web::Data<SubscriberState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (page, rest) = page_request(&req)?;
    let mut q = course_catalog::Entity::find()
        .filter(course_catalog::Column::Deleted.eq(false))
        .order_by_asc(course_catalog::Column::CourseId);
    for (key, value) in rest {
        if key == "instructor_id" {
            let id = parse_uuid(&value)
                .map_err(|m| ApiError::Invalid(vec![FieldError::new("instructor_id", m)]))?;
            q = q.filter(course_catalog::Column::InstructorId.eq(id));
        }
    }
    if let Some(after) = page.after {
        q = q.filter(course_catalog::Column::CourseId.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(&state.db).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |c| c.course_id)))
}

/// Registers the read routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/profiles", web::get().to(profiles_list))
        .route("/api/profiles/{id}", web::get().to(profile))
        .route("/api/catalog/courses", web::get().to(courses_list))
        .route("/api/catalog/courses/{id}", web::get().to(course));
}
