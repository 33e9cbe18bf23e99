//! Every Redis key and channel name ZealSync uses, derived from `redis.key_prefix`.

use uuid::Uuid;

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    /// Keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// `<prefix>:user:<id>`: a user's hash.
    pub fn user(&self, id: Uuid) -> String {
        format!("{}:user:{id}", self.prefix)
    }

    /// `<prefix>:course:<id>`: a course's hash.
    pub fn course(&self, id: Uuid) -> String {
        format!("{}:course:{id}", self.prefix)
    }

    /// `<prefix>:instructor:<id>:courses`: the instructor's live courses.
    pub fn instructor_courses(&self, id: Uuid) -> String {
        format!("{}{id}:courses", self.instructor_prefix())
    }

    /// `<prefix>:instructor:`, for scripts that build set keys from stored ids.
    pub fn instructor_prefix(&self) -> String {
        format!("{}:instructor:", self.prefix)
    }

    /// `<prefix>:<kind>:*`: a SCAN pattern over every hash of one kind (`user`, `course`).
    pub fn pattern(&self, kind: &str) -> String {
        format!("{}:{kind}:*", self.prefix)
    }

    /// `<prefix>:changes`: the channel live listeners subscribe to.
    pub fn changes(&self) -> String {
        format!("{}:changes", self.prefix)
    }
}
