//! The OpenAPI documents of both services, generated from the handlers' annotations, served
//! at `/docs/openapi.json` with an API reference UI at `/docs`.

use actix_web::{HttpResponse, web};
use utoipa::{OpenApi, ToSchema};
use utoipa_scalar::{Scalar, Servable};
use uuid::Uuid;

use crate::controllers::{
    courses, dashboard, dead_letters, health, metrics, outbox_admin, read_models, replay_admin,
    sync_status, users,
};

/// A problem document (RFC 9457), the body of every error.
#[derive(ToSchema)]
pub struct Problem {
    /// A URL naming the kind of problem.
    #[schema(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Field-level problems of a 422.
    pub errors: Option<Vec<FieldProblem>>,
}

/// One field's problem.
#[derive(ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// A user as the publisher owns it.
#[derive(ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// `student` or `instructor`.
    pub role: String,
    pub version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// POST / PUT body of a user (every field required; no other field allowed).
#[derive(ToSchema)]
pub struct UserBody {
    /// Trimmed and lower-cased; at most 254 characters with one `@`; unique.
    pub email: String,
    /// 1..=200 characters after trimming.
    pub name: String,
    /// `student` or `instructor`.
    pub role: String,
}

/// PATCH body of a user: any subset of the fields.
#[derive(ToSchema)]
pub struct UserPatch {
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Option<String>,
}

/// One page of users.
#[derive(ToSchema)]
pub struct UserPage {
    pub items: Vec<User>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

/// A course as the publisher owns it.
#[derive(ToSchema)]
pub struct Course {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub instructor_id: Uuid,
    pub version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// POST / PUT body of a course (`description` may be omitted: empty).
#[derive(ToSchema)]
pub struct CourseBody {
    /// 1..=200 characters after trimming.
    pub title: String,
    /// At most 10 000 characters.
    pub description: Option<String>,
    /// An existing user with role `instructor`.
    pub instructor_id: Uuid,
}

/// PATCH body of a course: any subset of the fields.
#[derive(ToSchema)]
pub struct CoursePatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub instructor_id: Option<Uuid>,
}

/// One page of courses.
#[derive(ToSchema)]
pub struct CoursePage {
    pub items: Vec<Course>,
    pub next_cursor: Option<String>,
}

/// The subscriber's copy of a user.
#[derive(ToSchema)]
pub struct Profile {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub source_version: i64,
    pub deleted: bool,
    /// When the applied event happened at the publisher.
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// When the subscriber committed it.
    pub synced_at: chrono::DateTime<chrono::Utc>,
}

/// One page of profiles.
#[derive(ToSchema)]
pub struct ProfilePage {
    pub items: Vec<Profile>,
    pub next_cursor: Option<String>,
}

/// A course in the subscriber's catalog, with its instructor's name.
#[derive(ToSchema)]
pub struct CatalogEntry {
    pub course_id: Uuid,
    pub title: String,
    pub description: String,
    pub instructor_id: Uuid,
    pub instructor_name: Option<String>,
    pub instructor_version: Option<i64>,
    pub source_version: i64,
    pub deleted: bool,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub synced_at: chrono::DateTime<chrono::Utc>,
}

/// One page of catalog entries.
#[derive(ToSchema)]
pub struct CatalogPage {
    pub items: Vec<CatalogEntry>,
    pub next_cursor: Option<String>,
}

/// A parked message.
#[derive(ToSchema)]
pub struct DeadLetter {
    pub id: Uuid,
    pub event_id: Option<Uuid>,
    pub routing_key: String,
    pub source_queue: String,
    pub reason: String,
    pub attempts: i32,
    pub payload: String,
    pub headers: String,
    pub first_failed_at: chrono::DateTime<chrono::Utc>,
    pub last_failed_at: chrono::DateTime<chrono::Utc>,
}

/// One page of parked messages.
#[derive(ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    pub next_cursor: Option<String>,
}

/// `GET /admin/outbox`.
#[derive(ToSchema)]
pub struct OutboxBacklog {
    pub pending: i64,
    pub oldest_pending_age_ms: i64,
    pub published_total: i64,
}

/// `POST /admin/replay` body (optional).
#[derive(ToSchema)]
pub struct ReplayBody {
    /// `user` or `course`; both when absent.
    pub aggregate_type: Option<String>,
    /// Only these ids.
    pub ids: Option<Vec<Uuid>>,
}

/// The publisher's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "ZealSync publisher", description = "Users and courses; every change becomes an event."),
    paths(
        users::list, users::create, users::get, users::replace, users::patch, users::delete,
        courses::list, courses::create, courses::get, courses::replace, courses::patch, courses::delete,
        health::live, health::ready, metrics::publisher_metrics, outbox_admin::stats, replay_admin::start,
    ),
    modifiers(&BearerAuth)
)]
pub struct PublisherApi;

/// The subscriber's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "ZealSync subscriber", description = "Projections kept in step with the publisher."),
    paths(
        read_models::profiles_list, read_models::profile, read_models::courses_list, read_models::course,
        sync_status::status, dashboard::page, dashboard::changes,
        dead_letters::list, dead_letters::retry, dead_letters::delete,
        health::live, health::ready, metrics::subscriber_metrics,
    ),
    modifiers(&BearerAuth)
)]
pub struct SubscriberApi;

/// Declares the admin bearer token scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn serve(doc: utoipa::openapi::OpenApi, cfg: &mut web::ServiceConfig) {
    let json = doc.to_pretty_json().unwrap_or_default();
    cfg.route(
        "/docs/openapi.json",
        web::get().to(move || {
            let json = json.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(json)
            }
        }),
    )
    .service(Scalar::with_url("/docs", doc));
}

/// Registers the publisher's docs.
pub fn publisher_routes(cfg: &mut web::ServiceConfig) {
    serve(PublisherApi::openapi(), cfg);
}

/// Registers the subscriber's docs.
pub fn subscriber_routes(cfg: &mut web::ServiceConfig) {
    serve(SubscriberApi::openapi(), cfg);
}
