//! Whether each external dependency (broker, Redis) is reachable now, as last seen by the
//! task that uses it; `/health/ready` reports these.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

impl LinkFlag {
    /// The dependency's name in health reports.
    pub fn name(&self) -> &'static str {
        self.name
    }
}
