//! What faces the outside in every service: the gRPC and operations (HTTP) listeners, and
//! the sequence that serves them, then drains on stop.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{
    config::HealthArgs,
    grpc_metrics::GrpcMetricsLayer,
    grpc_server::{self, Gate},
    health::Health,
    http,
};

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("cannot bind the {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

pub struct Frontend {
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    routes: Routes,
    grpc_metrics: GrpcMetricsLayer,
    gate: Gate,
    health: Health,
    registry: Arc<Registry>,
}

impl Frontend {
    /// Binds both addresses; `registry` must hold every metric by now.
    pub async fn bind(
        grpc_addr: SocketAddr,
        http_addr: SocketAddr,
        routes: Routes,
        grpc_metrics: GrpcMetricsLayer,
        gate: Gate,
        health: Health,
        registry: Registry,
    ) -> Result<Self, FrontendError> {
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| FrontendError::Bind { what, addr, source })
        };
        Ok(Self {
            grpc_listener: bind("gRPC", grpc_addr).await?,
            http_listener: bind("HTTP", http_addr).await?,
            routes,
            grpc_metrics,
            gate,
            health,
            registry: Arc::new(registry),
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves, with readiness checked on its timer, until `stop` is cancelled. Then health
    /// turns NOT_SERVING, in-flight calls get `grace` to finish, and only after that is
    /// `background` cancelled and its `tasks` awaited, so work the last calls caused (events
    /// to publish, offsets to commit) is still done.
    pub async fn serve(
        self,
        health_args: &HealthArgs,
        grace: Duration,
        stop: CancellationToken,
        background: CancellationToken,
        tasks: Vec<JoinHandle<()>>,
    ) -> Result<(), FrontendError> {
        let health_task = self.health.spawn(
            health_args.health_check_interval,
            health_args.health_check_timeout,
            background.clone(),
        );
        let refresh_task = self.gate.auth.spawn_refresh(background.clone());
        let tls_task = self
            .gate
            .tls
            .clone()
            .map(|tls| tls.spawn_watch(background.clone()));
        let http_task = tokio::spawn(http::serve(
            self.http_listener,
            http::router(self.health.clone(), self.registry),
            background.clone(),
        ));
        let served = grpc_server::serve_with_grace(
            self.grpc_listener,
            self.routes,
            self.grpc_metrics,
            self.gate,
            self.health,
            stop,
            grace,
        )
        .await;

        background.cancel();
        for task in tasks {
            let _ = task.await;
        }
        let _ = health_task.await;
        for task in [refresh_task, tls_task].into_iter().flatten() {
            let _ = task.await;
        }
        let _ = http_task.await;
        Ok(served?)
    }
}
