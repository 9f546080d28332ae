//! The names from before the tools were split into modules, which the services' own unit
//! tests still use.

pub use crate::{
    broker::{PrivateBroker, brokers, cluster, require_broker},
    database::TestDatabase,
    events::{EventReader, EventWriter},
    grpc::{field_violations, nickname_update},
    http::{get as http_get, try_get as try_http_get},
    metrics::{Sample, parse_metrics, sample},
    service_args::DEV_BROKER_ENV,
    spans::{finished_spans, init_tracing},
};
