//! What the worker does with a message it cannot finish: dead-letter it or hand it back,
//! decided on the error's kind and how often the message failed already, and the reason a
//! dead-lettered message carries.

use std::fmt;

use baton_engine::ports::PortErrorKind;

/// The longest text a reason quotes from its cause (an error, a panic message): reasons go
/// into a header and a completion, never the raw input.
pub const MAX_CAUSE_BYTES: usize = 512;

/// Why a message was dead-lettered. Its `Display` is the `x-baton-reason` header and the
/// failed execution's reason; bounded whatever the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The body is not a message a worker can run (`classify`'s poison reason).
    Unreadable(String),
    /// A start whose workflow definition or entry node is invalid.
    InvalidStart(String),
    /// A start by reference whose definition is not stored (expired or never stored).
    UnknownWorkflowRef(String),
    /// A hop whose workflow definition cannot be loaded or compiled.
    InvalidDefinition(String),
    /// The engine refused the hop (it names its node).
    Refused(String),
    /// A port failed with a permanent error.
    Permanent(String),
    /// A port kept failing with transient errors while the store answered.
    TransientBudget { failures: u64, last: String },
    /// Delivered to workers that died or lost the message before settling it.
    Crashed { workers: u64 },
    /// The worker panicked while processing it.
    Panicked(String),
}

impl DeadLetterReason {
    /// The reason's kind: the `reason` label of the dead-letter counter (a few fixed values,
    /// never the text).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreadable(_) => "unreadable",
            Self::InvalidStart(_) => "invalid_start",
            Self::UnknownWorkflowRef(_) => "unknown_workflow_ref",
            Self::InvalidDefinition(_) => "invalid_definition",
            Self::Refused(_) => "refused",
            Self::Permanent(_) => "permanent",
            Self::TransientBudget { .. } => "transient_budget",
            Self::Crashed { .. } => "crashed",
            Self::Panicked(_) => "panicked",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(why) => write!(f, "{}", bounded(why)),
            Self::InvalidStart(why) => write!(f, "{}", bounded(why)),
            Self::UnknownWorkflowRef(reference) => write!(
                f,
                "unknown workflow_ref `{}`: no definition is stored under it (expired, or never stored)",
                bounded(reference)
            ),
            Self::InvalidDefinition(why) => write!(f, "{}", bounded(why)),
            Self::Refused(why) => write!(f, "{}", bounded(why)),
            Self::Permanent(error) => {
                write!(f, "failed with a permanent error: {}", bounded(error))
            }
            Self::TransientBudget { failures, last } => write!(
                f,
                "failed {failures} times with transient errors, last: {}",
                bounded(last)
            ),
            Self::Crashed { workers } => write!(f, "crashed or stalled {workers} workers"),
            Self::Panicked(message) => write!(f, "panicked: {}", bounded(message)),
        }
    }
}

/// `text` cut to [`MAX_CAUSE_BYTES`] on a character boundary, marked when cut.
pub fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    baton_core::limits::bounded(text, MAX_CAUSE_BYTES)
}

/// The message of a caught panic (`panic!` payloads are a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Transient failures of one message before it is treated as poison.
pub const MAX_TRANSIENT_FAILURES: u64 = 20;

/// The fate of a message whose port failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Retrying cannot help: dead-letter it now with its reason.
    DeadLetter,
    /// It kept failing: dead-letter it unless the store is down for everyone (then the
    /// infrastructure, not the message, is at fault and it is handed back).
    DeadLetterIfStoreAnswers,
    /// Hand it back to the broker after a pause.
    Requeue,
}

/// `failures`: how many transient failures this message has had, this one included (not
/// counted for a permanent error).
pub fn disposition(kind: PortErrorKind, failures: u64) -> Disposition {
    match kind {
        PortErrorKind::Permanent => Disposition::DeadLetter,
        PortErrorKind::Transient if failures >= MAX_TRANSIENT_FAILURES => {
            Disposition::DeadLetterIfStoreAnswers
        }
        PortErrorKind::Transient => Disposition::Requeue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permanent_port_error_is_dead_lettered_at_once_without_retries() {
        assert_eq!(
            disposition(PortErrorKind::Permanent, 1),
            Disposition::DeadLetter
        );
    }

    #[test]
    fn a_transient_port_error_is_retried_until_its_budget_is_spent() {
        for failures in 1..MAX_TRANSIENT_FAILURES {
            assert_eq!(
                disposition(PortErrorKind::Transient, failures),
                Disposition::Requeue
            );
        }
        assert_eq!(
            disposition(PortErrorKind::Transient, MAX_TRANSIENT_FAILURES),
            Disposition::DeadLetterIfStoreAnswers
        );
    }

    #[test]
    fn reasons_are_bounded_whatever_their_cause() {
        let huge = "é".repeat(100_000);
        for reason in [
            DeadLetterReason::Unreadable(huge.clone()),
            DeadLetterReason::Permanent(huge.clone()),
            DeadLetterReason::TransientBudget {
                failures: 20,
                last: huge.clone(),
            },
            DeadLetterReason::Panicked(huge.clone()),
        ] {
            let text = reason.to_string();
            assert!(text.len() < 1024, "{} bytes", text.len());
            assert!(text.ends_with("[200000 bytes cut]"), "{text:.80}");
        }
        assert_eq!(
            DeadLetterReason::Crashed { workers: 3 }.to_string(),
            "crashed or stalled 3 workers"
        );
        assert_eq!(
            DeadLetterReason::Panicked("boom".into()).to_string(),
            "panicked: boom"
        );
    }

    #[test]
    fn a_panics_message_is_read_from_either_payload_type() {
        let caught = std::panic::catch_unwind(|| panic!("at {}", 42)).unwrap_err();
        assert_eq!(panic_message(caught.as_ref()), "at 42");
        let caught = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(caught.as_ref()), "plain");
    }

    #[test]
    fn an_unroutable_message_is_a_permanent_port_error() {
        let unroutable = baton_amqp::Error::Unroutable {
            routing_key: "nowhere".into(),
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
        };
        let error = crate::transport::broker_error(unroutable);
        assert_eq!(
            disposition(error.kind(), 1),
            Disposition::DeadLetter,
            "{error}"
        );
    }
}
