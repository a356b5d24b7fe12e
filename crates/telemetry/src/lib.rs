//! OpenTelemetry traces for Baton's processes (worker, master, `baton run`).
//!
//! - [`Telemetry::from_env`] reads the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`,
//!   `OTEL_TRACES_SAMPLER` and `_ARG`) and, when an endpoint is set, builds a tracer provider
//!   exporting spans over OTLP/HTTP (`http/protobuf` by default, `http/json` supported) through
//!   the process's tokio runtime. No endpoint: nothing is built or installed, and every helper
//!   of [`context`] is a flag check that returns what it was given.
//! - [`Telemetry::layer`] is the `tracing` layer that turns Baton's spans (targets `baton*`)
//!   into OpenTelemetry spans; [`Telemetry::shutdown`] flushes what is still buffered.
//! - [`context`] carries the W3C trace context (`traceparent`) through message headers with
//!   the SDK's `TraceContextPropagator`.

pub mod context;
mod export;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

pub use export::{Protocol, TraceSettings};

/// Whether a tracer provider is installed in this process (set once, by [`Telemetry::install`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// True when spans are exported: the hop path builds and links spans only then.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A bad `OTEL_*` setting, named with what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{var}={value:?}: expected `http/protobuf` or `http/json` (gRPC is not supported)")]
    Protocol { var: &'static str, value: String },
    #[error("{var}={value:?}: expected an http:// or https:// URL")]
    Endpoint { var: &'static str, value: String },
    #[error("cannot build the OTLP exporter")]
    Build(#[source] opentelemetry_otlp::ExporterBuildError),
    #[error("the OTLP exporter needs a tokio runtime: build it inside one")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
}

/// The tracer provider of this process; [`shutdown`](Self::shutdown) flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Reads the `OTEL_*` variables: `None` when no OTLP endpoint is set (tracing off).
    /// `default_service` names the process when `OTEL_SERVICE_NAME` is not set. Call it
    /// inside the tokio runtime the exporter will send from.
    pub fn from_env(default_service: &str) -> Result<Option<Self>, Error> {
        match TraceSettings::from_vars(default_service, |k| std::env::var(k).ok())? {
            Some(settings) => Self::install(&settings).map(Some),
            None => Ok(None),
        }
    }

    /// Builds the provider for `settings` and installs it as the global tracer provider, with
    /// the W3C trace-context propagator.
    pub fn install(settings: &TraceSettings) -> Result<Self, Error> {
        let provider = export::provider(settings)?;
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        opentelemetry::global::set_tracer_provider(provider.clone());
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Self { provider })
    }

    /// The `tracing` layer exporting Baton's own spans and events at `info` and above (targets
    /// starting with `baton`), not those of the libraries underneath, whatever `RUST_LOG` says.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("baton"))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target().starts_with("baton") && *meta.level() <= tracing::Level::INFO
            }))
    }

    /// Exports what is still buffered and stops the exporter. It blocks while the export runs
    /// on the runtime: from async code, call it on a blocking thread
    /// (`tokio::task::spawn_blocking`).
    pub fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace exporter did not flush cleanly");
        }
    }
}
