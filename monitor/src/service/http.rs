//! The /metrics and /healthz server. It runs on a thread and runtime of its own, so it answers
//! (503) even when the event loop is wedged: that is when the answer matters.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::metrics::Telemetry;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `address` now (a taken port is an error at start, not a silent gap in monitoring),
/// then serves from a thread; returns the bound address (port 0 picks a free one).
pub fn serve(address: SocketAddr, telemetry: Arc<Telemetry>) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(address).with_context(|| {
        format!("cannot serve metrics on {address}: set metrics.address to a free address, or empty to turn it off")
    })?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("monitor-http".into()).spawn(move || {
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("metrics server: {e}");
                    return;
                }
            };
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of descriptors, say: wait rather than spin.
                        tracing::warn!("metrics server: accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let telemetry = telemetry.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(req, telemetry.clone()));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(std::time::Duration::from_secs(10))
                        .serve_connection(TokioIo::new(stream), service);
                    let _ = conn.await;
                });
            }
        });
    })?;
    tracing::info!(address = %bound, "serving /metrics and /healthz");
    Ok(bound)
}

async fn answer(
    req: Request<Incoming>,
    telemetry: Arc<Telemetry>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = content_type.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        Ok(r)
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            // Rendering reads /proc and takes a few locks: off the accept loop's thread.
            let body = tokio::task::spawn_blocking(move || telemetry.render()).await.unwrap_or_default();
            reply(StatusCode::OK, OPENMETRICS, body)
        }
        "/healthz" => match telemetry.health.check() {
            Ok(()) => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("unhealthy: {why}\n")),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics or /healthz\n".into()),
    }
}
