//! Keyset pagination: ids are UUID v7, so ordering by id is creation order and stable.

use serde::Serialize;
use uuid::Uuid;

/// Smallest and largest page a client may ask for, and the default.
pub const LIMIT_RANGE: std::ops::RangeInclusive<u64> = 1..=500;
/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u64 = 50;

/// One page of a list; `next_cursor` is absent on the last page.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Where a page starts (after `cursor`) and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub after: Option<Uuid>,
    pub limit: u64,
}

impl<T> Page<T> {
    /// Cuts `rows` (fetched with `limit + 1`) into a page and the cursor of the next.
    pub fn from_rows(mut rows: Vec<T>, limit: u64, id: impl Fn(&T) -> Uuid) -> Self {
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}
