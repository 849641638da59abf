//! How SQLite rows give up their values, and the timestamp encoding (integer microseconds
//! since the epoch, UTC). The mapping to records is shared (`crate::rows`) and re-exported
//! here so queries and decoders sit side by side.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

pub(crate) use crate::rows::*;
use crate::{StoreError, StoreResult};

/// A timestamp as stored.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Now, as stored. Every write takes its times from here, so they share one clock.
pub(crate) fn now() -> i64 {
    micros(Utc::now())
}

/// Seconds as a stored duration.
pub(crate) fn secs(n: impl Into<i64>) -> i64 {
    n.into().saturating_mul(1_000_000)
}

fn from_micros(col: &str, v: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Corrupt(format!("{col}: timestamp {v} out of range")))
}

impl Cols for SqliteRow {
    cols_decoded_alike!();

    fn small(&self, col: &str) -> StoreResult<i32> {
        self.int(col)
    }

    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        from_micros(col, self.try_get(col)?)
    }

    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.try_get::<Option<i64>, _>(col)?
            .map(|v| from_micros(col, v))
            .transpose()
    }

    fn json(&self, col: &str) -> StoreResult<serde_json::Value> {
        let text: String = self.try_get(col)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    }
}
