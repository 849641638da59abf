//! Pagination of list endpoints (contract §2): `page` from 0, `per_page` clamped to 1..=100.

use crate::limits::{DEFAULT_PER_PAGE, MAX_PER_PAGE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl Page {
    /// Clamps what a client sent instead of refusing it.
    pub fn new(page: Option<u32>, per_page: Option<u32>) -> Self {
        Page {
            page: page.unwrap_or(0),
            per_page: per_page.unwrap_or(DEFAULT_PER_PAGE).clamp(1, MAX_PER_PAGE),
        }
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page) * i64::from(self.per_page)
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::new(None, None)
    }
}
