//! The W3C trace context (`traceparent`) of an execution, carried in message headers with the
//! SDK's `TraceContextPropagator` (the header name and format are the ones Rune sends).
//!
//! With tracing off ([`crate::enabled`] false) no span is linked or read: a message carries on
//! the context it came with, and a start without one gets a new root context (so logs still
//! share one `trace_id` per execution).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header that carries the trace context on every message.
pub const TRACEPARENT: &str = "traceparent";

static PROPAGATOR: LazyLock<TraceContextPropagator> = LazyLock::new(TraceContextPropagator::new);

/// A message's string headers (AMQP long strings on the wire, HTTP headers) as the
/// propagator's carrier.
#[derive(Debug)]
pub struct Headers<'a>(pub &'a mut BTreeMap<String, String>);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

/// Read-only view of received headers for the propagator.
#[derive(Debug)]
pub struct ReceivedHeaders<'a>(pub &'a BTreeMap<String, String>);

impl Extractor for ReceivedHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// One `traceparent` value as a carrier.
struct One<'a>(Option<&'a str>);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0).flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

fn traceparent_of(cx: &opentelemetry::Context) -> Option<String> {
    let mut headers = BTreeMap::new();
    PROPAGATOR.inject_context(cx, &mut Headers(&mut headers));
    headers.remove(TRACEPARENT)
}

/// The context a `traceparent` value names (an empty context if it is missing or invalid).
pub fn extract(traceparent: Option<&str>) -> opentelemetry::Context {
    PROPAGATOR.extract(&One(traceparent))
}

/// A new root trace context, sampled: a start that arrives without one (tracing off).
pub fn new_root() -> String {
    let ids = RandomIdGenerator::default();
    let span = SpanContext::new(
        ids.new_trace_id(),
        ids.new_span_id(),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(span);
    traceparent_of(&cx).unwrap_or_default()
}

/// The trace id of a `traceparent`, for log fields (`""` when there is none).
pub fn trace_id(traceparent: Option<&str>) -> &str {
    traceparent.and_then(|t| t.split('-').nth(1)).unwrap_or("")
}

/// Makes `span` a child of the context `traceparent` names, when tracing is on and the value
/// is valid (else the span starts a trace of its own).
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if crate::enabled() && traceparent.is_some() {
        let cx = extract(traceparent);
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
}

/// The `traceparent` of the current span, when tracing is on and a span is current.
pub fn current() -> Option<String> {
    if !crate::enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    traceparent_of(&cx)
}

/// The `traceparent` a message sent now carries: the current span's when tracing is on and
/// one is current (so the receiver's span is its child), else the one it `carried`.
pub fn outgoing(carried: Option<String>) -> Option<String> {
    current().or(carried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_root_is_a_valid_sampled_traceparent() {
        let root = new_root();
        assert_eq!(root.len(), 55, "{root}");
        assert!(root.starts_with("00-") && root.ends_with("-01"), "{root}");
        let cx = extract(Some(&root));
        let span = cx.span().span_context().clone();
        assert!(span.is_valid());
        assert_eq!(span.trace_id().to_string(), trace_id(Some(&root)));
        assert_ne!(new_root(), root);
    }

    #[test]
    fn headers_round_trip_through_the_propagator() {
        let root = new_root();
        let cx = extract(Some(&root));
        let mut headers = BTreeMap::new();
        PROPAGATOR.inject_context(&cx, &mut Headers(&mut headers));
        assert_eq!(headers.get(TRACEPARENT), Some(&root));
        let back = PROPAGATOR.extract(&ReceivedHeaders(&headers));
        assert_eq!(
            back.span().span_context().trace_id(),
            cx.span().span_context().trace_id()
        );
    }

    #[test]
    fn an_invalid_traceparent_names_no_context() {
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        ] {
            assert!(
                !extract(Some(bad)).span().span_context().is_valid(),
                "{bad}"
            );
        }
        assert!(!extract(None).span().span_context().is_valid());
        assert_eq!(trace_id(None), "");
    }

    #[test]
    fn with_tracing_off_nothing_is_installed_and_messages_keep_their_context() {
        // No endpoint in this test's variables: nothing is built.
        let none = crate::TraceSettings::from_vars("t", |_| None).unwrap();
        assert!(none.is_none());
        assert!(!crate::enabled());
        let span = tracing::info_span!("hop");
        let _entered = span.enter();
        assert_eq!(current(), None);
        assert_eq!(outgoing(Some("00-x".into())), Some("00-x".into()));
        assert_eq!(outgoing(None), None);
    }
}
