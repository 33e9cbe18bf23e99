//! The subscriber's read API: profiles and the course catalog, as the projections hold them.

use actix_web::{HttpRequest, HttpResponse, web};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::controllers::ApiError;
use crate::controllers::pagination::{page_request, path_id};
use crate::controllers::state::SubscriberState;
use crate::entities::subscriber::{course_catalog, profiles};
use crate::services::page::Page;
use crate::services::validation::{FieldError, parse_uuid};

async fn profile(
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

async fn profiles_list(
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

async fn course(
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

async fn courses_list(
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
