//! `user.v1.UserService` as query-service serves it: the generated server, but for the reads
//! that answer with the cache's encoded users (`answers`), which take their path here first.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use prost::Message;
use shared::grpc_deadline;
use shared_proto::{
    codec::Codec,
    v1::{self, user_service_server::UserServiceServer},
};
use tonic::{
    Request, Response, Status,
    body::Body,
    server::{Grpc, NamedService, UnaryService},
};

use super::{
    QueryService, Reads,
    answers::{UserAnswer, UsersAnswer},
    batch_get_users, get_user, get_user_by_email,
};

const GET_USER: &str = "/user.v1.UserService/GetUser";
const GET_USER_BY_EMAIL: &str = "/user.v1.UserService/GetUserByEmail";
const BATCH_GET_USERS: &str = "/user.v1.UserService/BatchGetUsers";

#[derive(Clone)]
pub struct ReadRoutes {
    reads: Arc<Reads>,
    generated: UserServiceServer<QueryService>,
}

impl ReadRoutes {
    pub fn new(reads: Reads) -> Self {
        Self {
            generated: UserServiceServer::new(QueryService::new(reads.clone())),
            reads: Arc::new(reads),
        }
    }
}

impl NamedService for ReadRoutes {
    const NAME: &'static str = <UserServiceServer<QueryService> as NamedService>::NAME;
}

impl tower::Service<http::Request<Body>> for ReadRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let reads = self.reads.clone();
        match request.uri().path() {
            GET_USER => unary(GetUser(reads), request),
            GET_USER_BY_EMAIL => unary(GetUserByEmail(reads), request),
            BATCH_GET_USERS => unary(BatchGetUsers(reads), request),
            _ => self.generated.call(request),
        }
    }
}

/// What the generated server does for a unary method, with this module's answer types.
fn unary<S, Req>(
    service: S,
    request: http::Request<Body>,
) -> BoxFuture<'static, Result<http::Response<Body>, Infallible>>
where
    S: UnaryService<Req> + Send + 'static,
    S::Response: Message + Send + 'static,
    S::Future: Send,
    Req: Message + Default + Send + 'static,
{
    Box::pin(async move {
        let mut grpc = Grpc::new(Codec::<S::Response, Req>::default());
        Ok(grpc.unary(service, request).await)
    })
}

type Answer<T> = BoxFuture<'static, Result<Response<T>, Status>>;

struct GetUser(Arc<Reads>);

impl UnaryService<v1::GetUserRequest> for GetUser {
    type Response = UserAnswer;
    type Future = Answer<UserAnswer>;

    fn call(&mut self, request: Request<v1::GetUserRequest>) -> Self::Future {
        let reads = self.0.clone();
        Box::pin(async move {
            let deadline = grpc_deadline::of(request.metadata());
            let user = get_user::handle(&reads, request.into_inner(), deadline).await?;
            Ok(Response::new(UserAnswer { user: user.bytes() }))
        })
    }
}

struct GetUserByEmail(Arc<Reads>);

impl UnaryService<v1::GetUserByEmailRequest> for GetUserByEmail {
    type Response = UserAnswer;
    type Future = Answer<UserAnswer>;

    fn call(&mut self, request: Request<v1::GetUserByEmailRequest>) -> Self::Future {
        let reads = self.0.clone();
        Box::pin(async move {
            let user = get_user_by_email::handle(&reads, request.into_inner()).await?;
            Ok(Response::new(UserAnswer { user: user.bytes() }))
        })
    }
}

struct BatchGetUsers(Arc<Reads>);

impl UnaryService<v1::BatchGetUsersRequest> for BatchGetUsers {
    type Response = UsersAnswer;
    type Future = Answer<UsersAnswer>;

    fn call(&mut self, request: Request<v1::BatchGetUsersRequest>) -> Self::Future {
        let reads = self.0.clone();
        Box::pin(async move {
            let found = batch_get_users::handle(&reads, request.into_inner()).await?;
            Ok(Response::new(UsersAnswer {
                users: found.users.iter().map(|user| user.bytes()).collect(),
                missing_ids: found.missing.iter().map(ToString::to_string).collect(),
            }))
        })
    }
}
