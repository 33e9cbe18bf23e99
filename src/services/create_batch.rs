//! Coalesces concurrent user creations into one statement (PostgreSQL). Under load many
//! requests wait for the database at once; one multi-row insert of the users and their outbox
//! rows costs little more than one, and commits them together. Each request still gets its
//! own answer: created, or taken when its email already belongs to a user (an existing one,
//! or an earlier one of the same batch).

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use uuid::Uuid;

use crate::entities::publisher::{outbox as outbox_row, users};
use crate::rabbitmq::envelope::Envelope;
use crate::rabbitmq::handoff::{Handoff, Slot};
use crate::services::outbox;

/// Creations one statement carries at most.
const MAX_BATCH: usize = 256;
/// Statements in flight at once (each on its own pooled connection).
const WRITERS: usize = 4;

/// One waiting creation.
struct Job {
    user: users::Model,
    envelope: Envelope,
    reply: oneshot::Sender<Result<bool, String>>,
}

/// The handle requests send their creations through.
pub struct CreateBatcher {
    jobs: mpsc::Sender<Job>,
}

impl CreateBatcher {
    /// Starts the writers on `db`, which give the rows they commit to the relay through
    /// `handoff` when there is one, and `wake` it for those they could not hand over; they
    /// stop when the batcher is dropped.
    pub fn start(db: DatabaseConnection, handoff: Option<Handoff>, wake: Arc<Notify>) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WRITERS {
            tokio::spawn(writer(
                db.clone(),
                rx.clone(),
                handoff.clone(),
                wake.clone(),
            ));
        }
        Self { jobs }
    }

    /// Inserts `user` and its `envelope` in the outbox, with whatever other creations are
    /// waiting. `Ok(false)` when the email is taken: nothing was written for this one.
    pub async fn create(&self, user: users::Model, envelope: Envelope) -> Result<bool, DbErr> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            user,
            envelope,
            reply,
        };
        let stopped = || DbErr::Custom("the publisher is shutting down".into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?.map_err(DbErr::Custom)
    }
}

/// Takes what is waiting (at least one), writes it in one statement, hands the rows written
/// to the relay, answers each.
async fn writer(
    db: DatabaseConnection,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    handoff: Option<Handoff>,
    wake: Arc<Notify>,
) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(job) => jobs.push(job),
                None => return,
            }
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let slots: Vec<Option<Slot>> = jobs
            .iter()
            .map(|_| handoff.as_ref().and_then(Handoff::reserve))
            .collect();
        let rows: Vec<outbox_row::Model> = jobs
            .iter()
            .zip(&slots)
            .map(|(job, slot)| outbox::model(&job.envelope, slot.as_ref().map(Slot::until)))
            .collect();
        match db.query_all_raw(insert_all(&jobs, &rows)).await {
            Ok(written) => {
                // Outbox id by user id, for the users inserted.
                let created: HashMap<Uuid, i64> = written
                    .iter()
                    .filter_map(|r| {
                        let user = r.try_get::<Uuid>("", "aggregate_id").ok()?;
                        Some((user, r.try_get::<i64>("", "id").ok()?))
                    })
                    .collect();
                let mut unhanded = false;
                for ((job, slot), mut row) in jobs.into_iter().zip(slots).zip(rows) {
                    let id = created.get(&job.user.id).copied();
                    match (id, slot) {
                        (Some(id), Some(slot)) => {
                            row.id = id;
                            slot.send(row);
                        }
                        (Some(_), None) => unhanded = true,
                        (None, _) => {}
                    }
                    let _ = job.reply.send(Ok(id.is_some()));
                }
                if unhanded {
                    // Written unclaimed: the relay claims them now instead of at its next poll.
                    wake.notify_one();
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(msg.clone()));
                }
            }
        }
    }
}

/// The users, skipping any whose email (or id) is taken, and the outbox `rows` of those
/// inserted, in request order; returns the outbox id and user id of each inserted.
fn insert_all(jobs: &[Job], rows: &[outbox_row::Model]) -> Statement {
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(jobs.len() * 16);
    let mut user_rows = Vec::with_capacity(jobs.len());
    let mut event_rows = Vec::with_capacity(jobs.len());
    for (n, (job, row)) in jobs.iter().zip(rows).enumerate() {
        let u = &job.user;
        let first = values.len() + 1;
        values.extend([
            u.id.into(),
            u.email.clone().into(),
            u.name.clone().into(),
            u.role.clone().into(),
            u.version.into(),
            u.created_at.into(),
            u.updated_at.into(),
        ]);
        user_rows.push(placeholders(n, first, 7, false));
        let first = values.len() + 1;
        values.extend(outbox::values(row));
        event_rows.push(placeholders(n, first, outbox::COLUMNS.len(), true));
    }
    let cols = outbox::COLUMNS.join(", ");
    let sql = format!(
        "WITH u AS (INSERT INTO users (id, email, name, role, version, created_at, updated_at) \
         VALUES {} ON CONFLICT DO NOTHING RETURNING id) \
         INSERT INTO outbox ({cols}) SELECT {cols} FROM (VALUES {}) AS e(n, {cols}) \
         JOIN u ON u.id = e.aggregate_id ORDER BY e.n RETURNING id, aggregate_id",
        user_rows.join(", "),
        event_rows.join(", "),
    );
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `($first, …, $first+count-1)`, led by the row's ordinal when `numbered`.
fn placeholders(n: usize, first: usize, count: usize, numbered: bool) -> String {
    let params: Vec<String> = (first..first + count).map(|p| format!("${p}")).collect();
    if numbered {
        format!("({n}, {})", params.join(", "))
    } else {
        format!("({})", params.join(", "))
    }
}
