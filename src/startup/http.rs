//! The HTTP server frame both services share: listener, request ids, problem+json defaults.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, web};

use crate::controllers::problem::not_found;
use crate::controllers::request_id::assign_request_id;
use crate::startup::StartupError;

/// Binds `host:port` (port 0 picks a free one) and reports the port actually bound.
pub fn bind(host: &str, port: u16) -> Result<(TcpListener, u16), StartupError> {
    let addr = format!("{host}:{port}");
    let listener = TcpListener::bind(&addr).map_err(|source| StartupError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let port = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?
        .port();
    Ok((listener, port))
}

/// Starts an actix server on `listener` with the routes `configure` registers.
pub fn serve<F>(listener: TcpListener, configure: F) -> Result<Server, StartupError>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .wrap(Compress::default())
            .wrap(from_fn(assign_request_id))
            .configure(configure.clone())
            .default_service(web::to(not_found))
    })
    .workers(2)
    .shutdown_timeout(10)
    .disable_signals()
    .listen(listener)
    .map_err(|source| StartupError::Bind { addr, source })?
    .run();
    Ok(server)
}
