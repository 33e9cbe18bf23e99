//! `GET /health/live` (the process answers) and `GET /health/ready` (its dependencies answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{HttpResponse, web};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Serialize;
use serde_json::json;

/// A dependency's state, kept current by whatever task uses it (e.g. the AMQP link).
#[derive(Clone)]
pub struct LinkFlag {
    name: &'static str,
    up: Arc<AtomicBool>,
}

impl LinkFlag {
    /// A flag for dependency `name`, initially down.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            up: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Records whether the dependency is reachable now.
    pub fn set(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    /// Whether it was reachable at last contact.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

/// The dependencies a service needs to be ready: its database plus linked services.
#[derive(Clone)]
pub struct Readiness {
    pub db: DatabaseConnection,
    pub links: Vec<LinkFlag>,
}

#[derive(Serialize)]
struct Check {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl Readiness {
    async fn report(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let mut checks = serde_json::Map::new();
        let mut ready = true;
        let db = match self.db.execute_unprepared("SELECT 1").await {
            Ok(_) => Check {
                status: "up",
                detail: None,
            },
            Err(e) => {
                ready = false;
                Check {
                    status: "down",
                    detail: Some(e.to_string()),
                }
            }
        };
        checks.insert("database".into(), json!(db));
        for link in &self.links {
            let up = link.is_up();
            ready &= up;
            let check = Check {
                status: if up { "up" } else { "down" },
                detail: (!up).then(|| "not connected; reconnecting".to_string()),
            };
            checks.insert(link.name.into(), json!(check));
        }
        (ready, checks)
    }
}

/// Liveness: the process serves requests.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "up"}))
}

/// Readiness: 200 when every dependency answers, 503 with per-dependency detail otherwise.
pub async fn ready(readiness: web::Data<Readiness>) -> HttpResponse {
    let (ok, checks) = readiness.report().await;
    let body = json!({"status": if ok { "up" } else { "down" }, "checks": checks});
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Registers both health routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready));
}
