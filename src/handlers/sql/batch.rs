//! Applying SQL projections one event at a time or a whole batch in one transaction: one
//! commit for many events is what makes the subscriber keep up with the broker. A batch that
//! fails anywhere is rolled back and replayed event by event, so one bad event never blocks
//! or mislabels the others.

use futures_util::future::BoxFuture;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use uuid::Uuid;

use crate::handlers::sql::inbox;
use crate::handlers::{HandlerError, Outcome};
use crate::rabbitmq::envelope::Envelope;

/// A projection whose effect of one event is a few statements inside a transaction.
pub trait SqlProjection: Send + Sync {
    /// The entity state the event carries, read from `data`.
    type Data: Send + Sync;

    /// The handler name (the `processed_events.handler` value).
    fn handler_name(&self) -> &'static str;

    /// The subscriber database.
    fn db(&self) -> &DatabaseConnection;

    /// Reads the event's data; a misfit is permanent.
    fn prepare(&self, event: &Envelope) -> Result<Self::Data, HandlerError>;

    /// The instructor whose rows this event touches (locked for the transaction).
    fn lock_key(&self, data: &Self::Data) -> Uuid;

    /// The version-guarded write, after the inbox record was taken.
    fn write<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a Envelope,
        data: &'a Self::Data,
    ) -> BoxFuture<'a, Result<Outcome, DbErr>>;
}

/// Inbox record, then the write; `Duplicate` when the inbox already had the event.
async fn apply_in<P: SqlProjection>(
    p: &P,
    txn: &DatabaseTransaction,
    event: &Envelope,
    data: &P::Data,
) -> Result<Outcome, DbErr> {
    if !inbox::record(txn, event.event_id, p.handler_name()).await? {
        return Ok(Outcome::Duplicate);
    }
    p.write(txn, event, data).await
}

/// One event in its own transaction.
pub async fn apply_one<P: SqlProjection>(p: &P, event: &Envelope) -> Result<Outcome, HandlerError> {
    let data = p.prepare(event)?;
    let txn = p.db().begin().await?;
    inbox::lock_instructor(&txn, p.lock_key(&data)).await?;
    let outcome = apply_in(p, &txn, event, &data).await?;
    txn.commit().await?;
    Ok(outcome)
}

/// Many events in one transaction (locks taken in id order, so concurrent batches cannot
/// deadlock); on any failure, each event again on its own.
pub async fn apply_many<P: SqlProjection>(
    p: &P,
    events: &[&Envelope],
) -> Vec<Result<Outcome, HandlerError>> {
    if events.len() == 1 {
        return vec![apply_one(p, events[0]).await];
    }
    let mut results: Vec<Option<Result<Outcome, HandlerError>>> = Vec::with_capacity(events.len());
    let mut prepared = Vec::with_capacity(events.len());
    for e in events {
        match p.prepare(e) {
            Ok(d) => {
                prepared.push(Some(d));
                results.push(None);
            }
            Err(err) => {
                prepared.push(None);
                results.push(Some(Err(err)));
            }
        }
    }
    let batch = async {
        let txn = p.db().begin().await?;
        let mut keys: Vec<Uuid> = prepared.iter().flatten().map(|d| p.lock_key(d)).collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            inbox::lock_instructor(&txn, k).await?;
        }
        let mut outcomes = Vec::with_capacity(events.len());
        for (e, d) in events.iter().zip(&prepared) {
            outcomes.push(match d {
                Some(d) => Some(apply_in(p, &txn, e, d).await?),
                None => None,
            });
        }
        txn.commit().await?;
        Ok::<_, DbErr>(outcomes)
    };
    match batch.await {
        Ok(outcomes) => {
            for (r, o) in results.iter_mut().zip(outcomes) {
                if let Some(o) = o {
                    *r = Some(Ok(o));
                }
            }
        }
        Err(e) => {
            tracing::debug!(handler = p.handler_name(), error = %e, "batch failed; applying its events one by one");
            for (r, e) in results.iter_mut().zip(events) {
                if r.is_none() {
                    *r = Some(apply_one(p, e).await);
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(HandlerError::Transient("not applied".into()))))
        .collect()
}
