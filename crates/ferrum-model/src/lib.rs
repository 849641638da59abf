//! Ferrum's domain model: identifiers, statuses, the records the store keeps and the rules that
//! make an input valid. Nothing here does IO, so every other crate can depend on it and the rules
//! are tested once.

pub mod batch;
pub mod code;
pub mod id;
pub mod limits;
pub mod page;
pub mod project;
pub mod protocol;
pub mod recurrence;
pub mod schedule;
pub mod stacks;
pub mod status;
pub mod task;
pub mod time;
pub mod token;
pub mod validation;
pub mod webhook;

pub use batch::{Batch, BatchItem, BatchStatus, NewBatch, NewReduce};
pub use code::{Code, CodeRevision, CodeSpec, NewRevision};
pub use id::Id;
pub use page::Page;
pub use project::{Principal, Project};
pub use schedule::{NewSchedule, Schedule, ScheduleStatus};
pub use status::TaskStatus;
pub use task::{NewTask, Task, TaskFilter, TaskOrigin};
pub use validation::ValidationError;
pub use webhook::{NewWebhook, SignatureScheme, Webhook};
