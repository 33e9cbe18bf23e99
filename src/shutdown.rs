//! A stop signal shared by a service's background workers (relay, consumers).

use tokio::sync::watch;

/// The sending side: `trigger()` asks every worker to finish its current step and stop.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// The receiving side, one clone per worker.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Asks the workers to stop.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is asked for (at once if it already was).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `d`, returning early (with `true`) when a stop is asked for.
    pub async fn sleep(&mut self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_stopping(),
            _ = self.wait() => true,
        }
    }
}
