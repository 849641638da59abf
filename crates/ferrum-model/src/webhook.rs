//! Ferrum's per-code webhooks: URLs a third party (Slack, GitHub, any service) calls to queue a
//! task, holding a secret in the path instead of a project token.

use chrono::{DateTime, Utc};

use crate::{Id, NewTask, ValidationError};

/// Longest a synchronous webhook waits for its task before answering with the task id.
pub const MAX_SYNC_TIMEOUT_SECS: i32 = 60;

/// How a webhook checks that a delivery comes from whom it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// Slack's `X-Slack-Signature: v0=<hex>` over `v0:<X-Slack-Request-Timestamp>:<body>`,
    /// with the timestamp within five minutes of now.
    Slack,
    /// GitHub's `X-Hub-Signature-256: sha256=<hex>` over the body.
    Github,
    /// `X-Ferrum-Signature: sha256=<hex>` (or bare hex) over the body.
    Hmac,
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureScheme::Slack => "slack",
            SignatureScheme::Github => "github",
            SignatureScheme::Hmac => "hmac",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        [Self::Slack, Self::Github, Self::Hmac]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                ValidationError::Invalid(format!(
                    "signature must be slack, github, hmac or null; got {s:?}"
                ))
            })
    }
}

/// A webhook as the store keeps it. The URL's secret is stored hashed and never read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: Id,
    pub project_id: Id,
    pub code_id: Id,
    pub code_name: String,
    pub signature: Option<SignatureScheme>,
    /// The signing secret the third party shares with us; `None` without a signature.
    pub secret: Option<String>,
    /// Seconds to wait for the task before answering; 0 answers at once.
    pub sync_timeout: i32,
    /// The options of every task this webhook queues (code, payload aside).
    pub task: NewTask,
    pub created_at: DateTime<Utc>,
}

impl Webhook {
    /// The task a delivery of `body` queues: the body is the payload, byte for byte.
    pub fn task_for(&self, body: Vec<u8>) -> NewTask {
        NewTask {
            code_name: self.code_name.clone(),
            payload: body,
            ..self.task.clone()
        }
    }
}

/// A validated request to create a webhook of a code.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    pub code_id: Id,
    pub signature: Option<SignatureScheme>,
    pub secret: Option<String>,
    pub sync_timeout: i32,
    /// Task options; `code_name` and `payload` are ignored.
    pub task: NewTask,
}

impl NewWebhook {
    /// Checks the combination: a signature needs a secret, and the sync wait is bounded.
    pub fn new(
        code_id: Id,
        signature: Option<&str>,
        secret: Option<String>,
        sync_timeout: i32,
        task: NewTask,
    ) -> Result<Self, ValidationError> {
        let signature = signature
            .filter(|s| !s.is_empty())
            .map(|s| {
                crate::limits::SIGNATURE
                    .check(s)
                    .and_then(|()| SignatureScheme::parse(s))
            })
            .transpose()?;
        let secret = crate::validation::optional(&crate::limits::WEBHOOK_SECRET, secret)?;
        if signature.is_some() != secret.is_some() {
            return Err(ValidationError::Invalid(
                "signature and secret go together: give both or neither".into(),
            ));
        }
        if !(0..=MAX_SYNC_TIMEOUT_SECS).contains(&sync_timeout) {
            return Err(ValidationError::Invalid(format!(
                "sync_timeout must be between 0 and {MAX_SYNC_TIMEOUT_SECS} seconds"
            )));
        }
        Ok(NewWebhook {
            code_id,
            signature,
            secret,
            sync_timeout,
            task,
        })
    }
}
