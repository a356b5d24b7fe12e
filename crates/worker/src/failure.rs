//! What the worker does with a message whose port (Redis, RabbitMQ) failed: dead-letter it or
//! hand it back, decided on the error's kind and how often the message failed already.

use baton_engine::ports::PortErrorKind;

/// Transient failures of one message before it is treated as poison.
pub const MAX_TRANSIENT_FAILURES: u32 = 20;

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
pub fn disposition(kind: PortErrorKind, failures: u32) -> Disposition {
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
