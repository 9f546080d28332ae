//! gRPC spoken over raw HTTP/2, so a request can be anything at all: frames of the wrong
//! length, bytes that are no protobuf, content types no client sends. One connection per
//! caller, opened again when the server closes it.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// A request as sent: path, content type and the whole body, framing included.
#[derive(Debug, Clone)]
pub(crate) struct RawRequest {
    pub(crate) path: String,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    Grpc(tonic::Code),
    /// An HTTP status without a gRPC status.
    Http(u16),
    /// The server reset the stream.
    Reset(String),
    /// The connection failed or closed.
    Broken(String),
    Silence,
}

impl Answer {
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Grpc(code) => format!("{code:?}"),
            Self::Http(status) => format!("HTTP {status}"),
            Self::Reset(reason) => format!("stream reset ({reason})"),
            Self::Broken(_) => "connection closed".to_owned(),
            Self::Silence => format!("no answer within {ANSWER_LIMIT:?}"),
        }
    }
}

/// gRPC's length-prefixed message: uncompressed flag, big-endian length, the bytes.
pub(crate) fn frame(message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

pub(crate) struct RawGrpc {
    addr: SocketAddr,
    send: Option<SendRequest<Bytes>>,
}

impl RawGrpc {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self { addr, send: None }
    }

    async fn connection(&mut self) -> Result<SendRequest<Bytes>, String> {
        if let Some(send) = &self.send {
            return Ok(send.clone());
        }
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|error| error.to_string())?;
        let (send, connection) = h2::client::handshake(stream)
            .await
            .map_err(|error| error.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.send = Some(send.clone());
        Ok(send)
    }

    pub(crate) async fn call(&mut self, request: &RawRequest) -> Answer {
        self.call_with(request, &[]).await
    }

    /// Like `call`, with extra request headers (`grpc-timeout: 1n`, which no well-behaved
    /// client sends).
    pub(crate) async fn call_with(
        &mut self,
        request: &RawRequest,
        headers: &[(&'static str, &str)],
    ) -> Answer {
        match tokio::time::timeout(ANSWER_LIMIT, self.exchange(request, headers)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                if error.is_reset() && !error.is_go_away() {
                    Answer::Reset(
                        error
                            .reason()
                            .map_or_else(|| "no reason".to_owned(), |reason| reason.to_string()),
                    )
                } else {
                    self.send = None;
                    Answer::Broken(error.to_string())
                }
            }
            Err(_) => {
                self.send = None;
                Answer::Silence
            }
        }
    }

    async fn exchange(
        &mut self,
        request: &RawRequest,
        headers: &[(&'static str, &str)],
    ) -> Result<Answer, h2::Error> {
        let send = match self.connection().await {
            Ok(send) => send,
            Err(error) => return Ok(Answer::Broken(error)),
        };
        let mut send = send.ready().await?;
        let mut head = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("http://{}{}", self.addr, request.path))
            .header("content-type", request.content_type)
            .header("te", "trailers");
        for (name, value) in headers {
            head = head.header(*name, *value);
        }
        let head = head.body(()).expect("a valid request head");
        let empty = request.body.is_empty();
        let (response, mut body) = send.send_request(head, empty)?;
        if !empty {
            body.send_data(request.body.clone(), true)?;
        }
        let response = response.await?;
        let status = response.status().as_u16();
        if let Some(code) = grpc_status(response.headers()) {
            return Ok(Answer::Grpc(code));
        }
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body.trailers().await?;
        Ok(trailers
            .as_ref()
            .and_then(grpc_status)
            .map_or(Answer::Http(status), Answer::Grpc))
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(tonic::Code::from_i32(value))
}

/// Writes `bytes` on a fresh connection and reads until the server closes it (or stops
/// answering): how the service treats bytes that are not HTTP/2 at all.
pub(crate) async fn junk(addr: SocketAddr, bytes: &[u8]) -> Answer {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        // The server may close before taking every byte; that is a fine answer too.
        let _ = stream.write_all(bytes).await;
        let mut sink = vec![0; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(())) => Answer::Broken("closed by the server".to_owned()),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionReset => {
            Answer::Broken("reset by the server".to_owned())
        }
        Ok(Err(error)) => Answer::Broken(error.to_string()),
        // Some junk reads as the start of something longer; the server waiting for the rest
        // is an answer as well, as long as it goes on serving others.
        Err(_) => Answer::Broken("left open, waiting for more".to_owned()),
    }
}
