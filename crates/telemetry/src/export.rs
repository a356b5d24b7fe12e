//! The OTLP/HTTP span exporter: its settings from the `OTEL_*` variables, and the tracer
//! provider that batches spans to it. The batch processor exports from a thread of its own;
//! the HTTP request itself runs on the process's tokio runtime ([`OnRuntime`]), so the async
//! reqwest client of the workspace serves it (no blocking client, no second reqwest).

use std::fmt;

use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::runtime::Handle;

use crate::Error;

/// The standard variables read (the sampler's, `OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG`, are read by the SDK itself).
pub const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

/// How spans are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf` (the default): `application/x-protobuf`.
    HttpProtobuf,
    /// `http/json`: `application/json`.
    HttpJson,
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// The full URL spans are POSTed to (`…/v1/traces`).
    pub endpoint: String,
    pub protocol: Protocol,
    /// `service.name` of the process's resource.
    pub service_name: String,
}

impl TraceSettings {
    /// The settings from variables read by `var` (the environment in production): `None` when
    /// neither endpoint variable is set (or both are empty). The traces endpoint is used as it
    /// is; the general one gets `/v1/traces` appended, as the OTLP specification says.
    pub fn from_vars(
        default_service: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let endpoint = match (set(TRACES_ENDPOINT), set(ENDPOINT)) {
            (Some(url), _) => checked_url(TRACES_ENDPOINT, url.trim())?.to_string(),
            (None, Some(base)) => format!(
                "{}/v1/traces",
                checked_url(ENDPOINT, base.trim())?.trim_end_matches('/')
            ),
            (None, None) => return Ok(None),
        };
        let protocol = match set(TRACES_PROTOCOL)
            .map(|v| (TRACES_PROTOCOL, v))
            .or_else(|| set(PROTOCOL).map(|v| (PROTOCOL, v)))
        {
            None => Protocol::HttpProtobuf,
            Some((name, value)) => match value.trim() {
                "http/protobuf" => Protocol::HttpProtobuf,
                "http/json" => Protocol::HttpJson,
                _ => return Err(Error::Protocol { var: name, value }),
            },
        };
        let service_name = set(SERVICE_NAME).unwrap_or_else(|| default_service.to_string());
        Ok(Some(Self {
            endpoint,
            protocol,
            service_name,
        }))
    }
}

fn checked_url<'a>(var: &'static str, url: &'a str) -> Result<&'a str, Error> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(Error::Endpoint {
            var,
            value: url.to_string(),
        })
    }
}

/// The tracer provider exporting to `settings` in batches. Must be called inside a tokio
/// runtime: the exporter's requests run on it.
pub(crate) fn provider(settings: &TraceSettings) -> Result<SdkTracerProvider, Error> {
    let client = OnRuntime {
        client: reqwest::Client::new(),
        runtime: Handle::try_current().map_err(Error::NoRuntime)?,
    };
    let protocol = match settings.protocol {
        Protocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(settings.endpoint.clone())
        .with_protocol(protocol)
        .build()
        .map_err(Error::Build)?;
    // One process, one instance id: tells apart the spans of two workers of one service.
    let instance = format!("{}-{:016x}", std::process::id(), rand_u64(),);
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.instance.id", instance))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

fn rand_u64() -> u64 {
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
    u64::from_be_bytes(RandomIdGenerator::default().new_span_id().to_bytes())
}

/// The workspace's async reqwest client, its requests spawned on the process's runtime (the
/// batch processor awaits them from its own thread, outside any runtime).
struct OnRuntime {
    client: reqwest::Client,
    runtime: Handle,
}

impl fmt::Debug for OnRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnRuntime")
    }
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as HttpError)?
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<TraceSettings>, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TraceSettings::from_vars("baton-worker", |k| vars.get(k).cloned())
    }

    #[test]
    fn no_endpoint_means_tracing_off() {
        assert_eq!(settings(&[]).unwrap(), None);
        assert_eq!(settings(&[(ENDPOINT, " ")]).unwrap(), None);
        assert_eq!(
            settings(&[(SERVICE_NAME, "x"), (PROTOCOL, "http/json")]).unwrap(),
            None
        );
    }

    #[test]
    fn the_general_endpoint_gets_the_traces_path_and_protobuf_by_default() {
        let s = settings(&[(ENDPOINT, "http://collector:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(s.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(s.protocol, Protocol::HttpProtobuf);
        assert_eq!(s.service_name, "baton-worker");
    }

    #[test]
    fn the_traces_endpoint_wins_and_is_used_as_is() {
        let s = settings(&[
            (ENDPOINT, "http://a:4318"),
            (TRACES_ENDPOINT, "http://b:9999/custom"),
            (PROTOCOL, "http/json"),
            (SERVICE_NAME, "billing-workers"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "http://b:9999/custom");
        assert_eq!(s.protocol, Protocol::HttpJson);
        assert_eq!(s.service_name, "billing-workers");
    }

    #[test]
    fn grpc_and_unknown_protocols_are_refused_by_name() {
        let err = settings(&[(ENDPOINT, "http://a:4317"), (PROTOCOL, "grpc")]).unwrap_err();
        assert!(err.to_string().contains(PROTOCOL), "{err}");
        assert!(err.to_string().contains("http/protobuf"), "{err}");
    }

    #[test]
    fn an_endpoint_that_is_not_a_url_is_refused_by_name() {
        let err = settings(&[(ENDPOINT, "collector:4318")]).unwrap_err();
        assert!(err.to_string().contains(ENDPOINT), "{err}");
    }
}
