//! How Postgres rows give up their values; the mapping to records is shared
//! (`crate::rows`), and re-exported here so queries and decoders sit side by side.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

pub(crate) use crate::rows::*;
use crate::StoreResult;

impl Cols for PgRow {
    cols_decoded_alike!();

    fn small(&self, col: &str) -> StoreResult<i32> {
        Ok(i32::from(self.try_get::<i16, _>(col)?))
    }

    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        Ok(self.try_get(col)?)
    }

    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.try_get(col)?)
    }

    fn json(&self, col: &str) -> StoreResult<serde_json::Value> {
        Ok(self.try_get(col)?)
    }
}
