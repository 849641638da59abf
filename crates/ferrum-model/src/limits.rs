//! Limits from the IronWorker contract (§2, §3.3, §3.4), in one place so that the API, the store
//! and the runner agree on them.

/// Largest task payload and code config, in bytes (contract §2).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Task timeout used when a task gives none, or 0 (contract §5.3).
pub const DEFAULT_TIMEOUT_SECS: i32 = 3600;
/// Longest timeout any plan allows (24 h, brief §1).
pub const MAX_TIMEOUT_SECS: i32 = 86_400;
/// Longest task delay (7 days, contract §3.3 T2).
pub const MAX_DELAY_SECS: i32 = 604_800;
/// Shortest schedule interval (contract §3.4 S2).
pub const MIN_RUN_EVERY_SECS: i32 = 60;
/// Most automatic retries a code may ask for (contract §3.2 C2).
pub const MAX_RETRIES: i32 = 10;
/// Largest page a list endpoint returns (contract §2).
pub const MAX_PER_PAGE: u32 = 100;
/// Page size when the client gives none (contract §2).
pub const DEFAULT_PER_PAGE: u32 = 30;
/// The cluster a task runs on when it names none.
pub const DEFAULT_CLUSTER: &str = "default";
/// Smallest memory limit a code may ask for, in MiB: Docker refuses a container under 6 MB.
pub const MIN_MEMORY_MB: i32 = 6;
/// Smallest CPU quota a code may ask for: Docker refuses a container under 0.01 CPUs.
pub const MIN_CPUS: f64 = 0.01;
