//! Counts and times every request by route, method and status: a tower
//! layer around the router. The route is the route's template, found from
//! the path by [`route_of`], so a label value never carries an application
//! name or a token id, and unknown paths share one value.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{Method, Request, Response};
use tower::{Layer, Service};

use super::Metrics;

/// Adds [`MetricsService`] around a service.
#[derive(Clone)]
pub struct MetricsLayer(pub Arc<Metrics>);

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// Counts and times each request it passes on.
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = route_of(request.uri().path());
        let method = method_of(request.method());
        Timed {
            inner: self.inner.call(request),
            metrics: self.metrics.clone(),
            route,
            method,
            started: Instant::now(),
        }
    }
}

/// The inner service's answer, counted when it is ready.
pub struct Timed<F> {
    inner: F,
    metrics: Arc<Metrics>,
    route: &'static str,
    method: &'static str,
    started: Instant,
}

impl<F, R, E> Future for Timed<F>
where
    F: Future<Output = Result<Response<R>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = Pin::new(&mut self.inner).poll(cx);
        if let Poll::Ready(Ok(response)) = &answer {
            self.metrics.answered(
                self.route,
                self.method,
                response.status().as_u16(),
                self.started.elapsed(),
            );
        }
        answer
    }
}

/// The route template a path belongs to.
#[must_use]
pub fn route_of(path: &str) -> &'static str {
    match path {
        "/secapp/update" => "/secapp/update",
        "/secapp/stream" => "/secapp/stream",
        "/secapp/consumers" => "/secapp/consumers",
        "/secapp/alerts" => "/secapp/alerts",
        "/secapp/alerts/history" => "/secapp/alerts/history",
        "/secapp/history" => "/secapp/history",
        "/admin/apps" => "/admin/apps",
        "/admin/tokens" => "/admin/tokens",
        "/admin/audit" => "/admin/audit",
        "/admin/auth-failures" => "/admin/auth-failures",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/openapi.json" => "/openapi.json",
        _ => {
            if let Some(rest) = path.strip_prefix("/admin/apps/") {
                if rest.strip_suffix("/tokens").is_some_and(one_segment) {
                    return "/admin/apps/{name}/tokens";
                }
                if one_segment(rest) {
                    return "/admin/apps/{name}";
                }
            }
            if path.strip_prefix("/admin/tokens/").is_some_and(one_segment) {
                return "/admin/tokens/{id}";
            }
            if path == "/docs" || path.starts_with("/docs/") {
                return "/docs";
            }
            "other"
        }
    }
}

fn one_segment(rest: &str) -> bool {
    !rest.is_empty() && !rest.contains('/')
}

fn method_of(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn paths_map_to_their_route_template_and_nothing_else_leaks_into_a_label() {
        assert_eq!(route_of("/secapp/update"), "/secapp/update");
        assert_eq!(route_of("/admin/apps/billing"), "/admin/apps/{name}");
        assert_eq!(
            route_of("/admin/apps/billing/tokens"),
            "/admin/apps/{name}/tokens"
        );
        assert_eq!(route_of("/admin/tokens/tok_123"), "/admin/tokens/{id}");
        assert_eq!(route_of("/docs/index.html"), "/docs");
        for invented in [
            "/",
            "/secapp/updates",
            "/admin/apps/a/b/c",
            "/admin/tokens/",
            "/x",
        ] {
            assert_eq!(route_of(invented), "other", "{invented}");
        }
    }
}
