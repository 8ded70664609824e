//! OpenTelemetry trace export (cargo feature `otel`, off by default):
//! every HTTP request is a span (`http.request`, with method, path, status
//! and request id), its `tracing` events (the relay's `relayed` line among
//! them) become span events, and spans leave in batches over OTLP/HTTP
//! (protobuf) to `--otlp-endpoint`.
//!
//! The exporter runs on the SDK's own background thread with a blocking
//! HTTP client, so nothing here runs on, or waits in, the request path.

use std::sync::OnceLock;

use anyhow::Context;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::relay::request_id::RequestId;

/// The provider [`install`] set up, for [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// A `tracing` layer exporting spans to `endpoint` (the full OTLP/HTTP
/// traces URL, such as `http://127.0.0.1:4318/v1/traces`), and its
/// provider, which flushes and stops the export.
pub fn layer<S>(endpoint: &str) -> anyhow::Result<(impl Layer<S> + use<S>, SdkTracerProvider)>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    // The exporter's client is reqwest's, built without a TLS provider of its own.
    crate::upstream::install_tls_provider();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("sluicegate")
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("sluicegate");
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
}

/// [`layer`] for the process-wide subscriber; [`shutdown`] flushes it.
pub fn install<S>(endpoint: &str) -> anyhow::Result<impl Layer<S> + use<S>>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let (layer, provider) = layer(endpoint)?;
    let _ = PROVIDER.set(provider);
    Ok(layer)
}

/// Exports the spans still queued and stops the exporter (at shutdown).
/// Blocking: it waits for the last export.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!(%error, "flushing OpenTelemetry spans failed");
    }
}

/// Middleware: runs the request inside its `http.request` span.
pub async fn span(request: Request, next: Next) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.as_str().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{} {}", request.method(), request.uri().path()),
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
        request_id = %request_id,
        http.response.status_code = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}
