//! `GET /health/live` (the process answers) and `GET /health/ready` (its dependencies answer).

use actix_web::{HttpResponse, web};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::Serialize;
use serde_json::json;

use crate::links::LinkFlag;

/// The dependencies a service needs to be ready: its database plus linked services.
#[derive(Clone)]
pub struct Readiness {
    pub db: DatabaseConnection,
    pub links: Vec<LinkFlag>,
    /// Pinged on every check when the service uses Redis.
    pub redis: Option<deadpool_redis::Pool>,
}

async fn ping_redis(pool: &deadpool_redis::Pool) -> Result<(), String> {
    let mut conn = tokio::time::timeout(std::time::Duration::from_secs(2), pool.get())
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("unexpected answer {pong}"))
    }
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
        let ping = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.db.execute_unprepared("SELECT 1"),
        )
        .await
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        let db = match ping {
            Ok(_) => Check {
                status: "up",
                detail: None,
            },
            Err(e) => {
                ready = false;
                Check {
                    status: "down",
                    detail: Some(e),
                }
            }
        };
        checks.insert("database".into(), json!(db));
        if let Some(pool) = &self.redis {
            let check = match ping_redis(pool).await {
                Ok(()) => Check {
                    status: "up",
                    detail: None,
                },
                Err(e) => {
                    ready = false;
                    Check {
                        status: "down",
                        detail: Some(e),
                    }
                }
            };
            checks.insert("redis".into(), json!(check));
        }
        for link in &self.links {
            let up = link.is_up();
            ready &= up;
            let check = Check {
                status: if up { "up" } else { "down" },
                detail: (!up).then(|| "not connected; reconnecting".to_string()),
            };
            checks.insert(link.name().into(), json!(check));
        }
        (ready, checks)
    }
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, description = "The process answers")))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "up"}))
}

/// Readiness: 200 when every dependency answers, 503 with per-dependency detail otherwise.
#[utoipa::path(get, path = "/health/ready", tag = "operations", responses((status = 200, description = "Every dependency is up"), (status = 503, description = "A dependency is down; `checks` says which")))]
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
