//! What one caller can cost the gRPC server: at most `MAX_STREAMS_PER_CONNECTION` calls at
//! once on a connection, and at most `GRPC_MAX_IN_FLIGHT` in the whole process. A call past
//! that is answered at once with UNAVAILABLE (retry with backoff) rather than queued without
//! limit; health checks always pass, so probes see the truth.

use std::{
    future::{Future, Ready, ready},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::Either;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tower::{Layer, Service};

/// hyper's own default, which tonic does not set.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 200;

#[derive(Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl InFlightLimit {
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl<S> Layer<S> for InFlightLimit {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limited {
            inner,
            limit: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    limit: InFlightLimit,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Limited<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Holding<S::Future>, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let permit = if request.uri().path().starts_with("/grpc.health.v1.Health/") {
            None
        } else {
            let Ok(permit) = Arc::clone(&self.limit.permits).try_acquire_owned() else {
                return Either::Right(ready(Ok(Status::unavailable(format!(
                    "the service is at its limit of {} calls in flight; retry with backoff",
                    self.limit.limit
                ))
                .into_http())));
            };
            Some(permit)
        };
        Either::Left(Holding {
            call: self.inner.call(request),
            permit,
        })
    }
}

pin_project_lite::pin_project! {
    /// A call that holds its place among those in flight until it has its answer.
    pub struct Holding<F> {
        #[pin]
        call: F,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F: Future> Future for Holding<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.call.poll(cx));
        this.permit.take();
        Poll::Ready(answer)
    }
}
