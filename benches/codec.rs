//! Criterion benches for the hot pure-CPU steps: envelope encode / decode and the router's
//! dispatch by routing key. Run with `cargo bench`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::future::BoxFuture;
use zealsync::handlers::{EventHandler, HandlerError, Outcome};
use zealsync::rabbitmq::envelope::{Action, AggregateType, Envelope, EventType};
use zealsync::rabbitmq::router::Router;

fn sample() -> Envelope {
    let id = uuid::Uuid::now_v7();
    Envelope::new(
        EventType::new(AggregateType::User, Action::Updated),
        id,
        7,
        Some(uuid::Uuid::now_v7().to_string()),
        serde_json::json!({"id": id, "email": "ada@example.com", "name": "Ada Lovelace", "role": "instructor",
            "version": 7, "created_at": "2026-12-04T10:00:00.123456Z", "updated_at": "2026-12-04T10:00:00.123456Z"}),
    )
}

/// A handler that does nothing: the bench measures the dispatch, not a store.
struct Nothing(&'static str);

impl EventHandler for Nothing {
    fn name(&self) -> &'static str {
        self.0
    }

    fn apply<'a>(&'a self, _: &'a Envelope) -> BoxFuture<'a, Result<Outcome, HandlerError>> {
        Box::pin(async { Ok(Outcome::Applied) })
    }
}

fn codec(c: &mut Criterion) {
    let env = sample();
    let body = env.encode();
    c.bench_function("envelope encode", |b| b.iter(|| black_box(&env).encode()));
    c.bench_function("envelope decode", |b| {
        b.iter(|| Envelope::decode(black_box(&body)))
    });
    let router = Router::new(Arc::new(Nothing("users")), Arc::new(Nothing("courses")));
    c.bench_function("router dispatch", |b| {
        b.iter(|| {
            router
                .route(black_box("course.updated"))
                .map(|(_, h)| h.name())
        })
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
