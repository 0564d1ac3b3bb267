//! Client connections: the accept loop and the limits that keep slow or idle clients from
//! holding sockets for ever (`connections:` in the config).
//!
//! - At most `connections.max` connections are open: the loop takes a permit before it
//!   accepts, so at the cap new connections wait in the kernel's listen backlog.
//! - A request head must be complete within `header-read-timeout` of the connection's start
//!   (or of the head's first byte on a kept-alive connection); otherwise the connection is
//!   closed without an answer.
//! - A request body must be complete within `body-read-timeout` of the request's arrival;
//!   otherwise reading it fails with [`BodyTimedOut`], the request is answered 408 and the
//!   connection closed.
//! - A connection with no request in flight for `idle-timeout` is closed (HTTP/2: GOAWAY).
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge, h2c) are served on the same port, as `axum::serve`
//! does; graceful shutdown stops accepting and lets every connection finish what it has.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

use crate::config::Connections;
use crate::error::GatewayError;

/// File descriptors kept for everything but client connections (store, upstream sockets,
/// log and token files) when the connection cap is fitted to the descriptor limit.
const RESERVED_FDS: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limit in effect (or
/// `None` where there is no such limit).
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
            && maximum > current
        {
            let raised = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::warn!(current, maximum, error = %e, "could not raise the open-file limit");
            }
        } else if limit.current.is_some() && limit.maximum.is_none() {
            // An unlimited hard limit: some systems refuse an unlimited soft one, so ask for
            // a large finite value.
            let raised = Rlimit {
                current: Some(1 << 20),
                maximum: None,
            };
            let _ = setrlimit(Resource::Nofile, raised);
        }
        getrlimit(Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap in effect: `connections.max`, lowered to leave [`RESERVED_FDS`]
/// descriptors when the open-file limit is too small for it.
pub fn effective_cap(configured: usize, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(limit) => {
            let room =
                usize::try_from(limit.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX);
            configured.min(room)
        }
        None => configured,
    }
}

/// Serves `app` on `listener` until `stop` turns true; then stops accepting, asks every
/// connection to finish (HTTP/1: after the current response; HTTP/2: GOAWAY) and returns
/// once all of them have closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Connections,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    // Dropped when shutdown begins: every connection task watches it.
    let (shutdown_tx, shutdown_rx) = watch::channel(());
    // Each connection task holds a receiver; all dropped = all connections closed.
    let (closed_tx, closed_rx) = watch::channel(());
    let mut at_cap_logged = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                at_cap_logged = false;
                permit
            }
            Err(_) => {
                if !at_cap_logged {
                    tracing::warn!(
                        max = max_connections,
                        "connection cap reached: new connections wait in the listen backlog"
                    );
                    at_cap_logged = true;
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = stop_requested(&mut stop) => break,
                }
            }
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors (or similar): wait instead of spinning.
                        tracing::error!(error = %e, "accept failed; retrying in 1s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = stop_requested(&mut stop) => break,
        };
        // Streams are many small writes: without TCP_NODELAY, Nagle's algorithm holds each
        // one for the previous one's ACK (about 40 ms on loopback with delayed ACKs).
        let _ = tcp.set_nodelay(true);
        let shutdown = shutdown_rx.clone();
        let closed = closed_rx.clone();
        let app = app.clone();
        tokio::spawn(async move {
            serve_connection(tcp, remote, app, limits, shutdown).await;
            drop(permit);
            drop(closed);
        });
    }
    drop(listener);
    drop(shutdown_rx);
    shutdown_tx.send_replace(());
    drop(shutdown_tx);
    drop(closed_rx);
    closed_tx.closed().await;
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.is_ok();
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection's clocks, shared by its socket, its requests and its watchdog.
struct Activity {
    origin: Instant,
    /// Requests of this connection whose response has not ended.
    in_flight: AtomicUsize,
    /// When the connection last became idle (ms since `origin`).
    idle_since: AtomicU64,
    /// When the pending request head began (ms since `origin` + 1; 0 = none pending).
    head_since: AtomicU64,
    /// HTTP/2 (its frames are not request heads; only the idle clock applies).
    http2: AtomicBool,
    /// Woken when a clock changes.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            // A new connection owes its first request head from the start.
            head_since: AtomicU64::new(1),
            http2: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    /// Bytes arrived from the client.
    fn on_read(&self, first_bytes: Option<&[u8]>) {
        if let Some(bytes) = first_bytes
            && bytes.starts_with(b"PRI * HTTP/2.0")
        {
            self.http2.store(true, Ordering::Relaxed);
            self.head_since.store(0, Ordering::Relaxed);
        }
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.http2.load(Ordering::Relaxed)
            && self
                .head_since
                .compare_exchange(0, self.now_ms() + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// A request reached the service.
    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        self.changed.notify_one();
    }

    /// A response ended (or was dropped).
    fn request_ended(&self) {
        self.idle_since.store(self.now_ms(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// The next deadline and what expires then; `None` while a request is in flight.
    fn deadline(&self, limits: &Connections) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_since.load(Ordering::Acquire) {
            0 => Some((
                self.at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout,
                Expiry::Idle,
            )),
            since => Some((
                self.at(since - 1) + limits.header_read_timeout,
                Expiry::Head,
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Head,
    Idle,
}

/// Ends a request's in-flight count when its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

async fn serve_connection(
    tcp: TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: Connections,
    mut shutdown: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: tcp,
        activity: activity.clone(),
        seen: false,
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let activity = activity.clone();
            let app = app.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    handle(app, request, remote, &limits, activity).await,
                )
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http2().enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    let mut idle_closed = false;
    loop {
        let deadline = activity.deadline(&limits);
        let wake = deadline.map_or_else(
            || Instant::now() + Duration::from_secs(24 * 3600),
            |(at, _)| at,
        );
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%remote, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.changed.notified() => {}
            () = tokio::time::sleep_until(wake) => {
                // Re-read: a request may have begun since the deadline was taken.
                match activity.deadline(&limits) {
                    Some((at, Expiry::Head)) if at <= Instant::now() => {
                        tracing::debug!(%remote, "closing a connection: request head not received in time");
                        break;
                    }
                    Some((at, Expiry::Idle)) if at <= Instant::now() => {
                        if idle_closed || draining {
                            break;
                        }
                        tracing::debug!(%remote, "closing an idle connection");
                        idle_closed = true;
                        conn.as_mut().graceful_shutdown();
                        // Give the close (HTTP/2: GOAWAY) one more idle period at most.
                        activity.idle_since.store(activity.now_ms(), Ordering::Release);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// One request: the peer address for `peer.rs`, the body's deadline, the in-flight count.
async fn handle(
    mut app: Router,
    request: http::Request<Incoming>,
    remote: SocketAddr,
    limits: &Connections,
    activity: Arc<Activity>,
) -> Response {
    use tower::Service;
    activity.request_started();
    let guard = InFlight(activity);
    let timed_out = Arc::new(AtomicBool::new(false));
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(remote));
    let body = Body::new(Deadline {
        inner: body,
        sleep: Box::pin(tokio::time::sleep(limits.body_read_timeout)),
        timeout: limits.body_read_timeout,
        timed_out: timed_out.clone(),
    });
    let is_api = parts.uri.path().starts_with("/api/");
    let http1 = parts.version < http::Version::HTTP_2;
    let request = http::Request::from_parts(parts, body);
    let response = match app.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let mut response = if timed_out.load(Ordering::Acquire)
        && response.status() != http::StatusCode::REQUEST_TIMEOUT
    {
        // A handler outside the proxy pipeline saw the body fail (its extractor's 400):
        // the client should learn that it was too slow.
        let error = GatewayError::body_timeout(limits.body_read_timeout);
        if is_api {
            error.render_seed004()
        } else {
            error.into_response()
        }
    } else {
        response
    };
    if http1 && timed_out.load(Ordering::Acquire) {
        // The rest of the body will not be read: the connection cannot carry another request.
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response.map(|body| {
        Body::new(Tracked {
            inner: body,
            _guard: guard,
        })
    })
}

/// The error a request body fails with once `body-read-timeout` has passed.
#[derive(Debug)]
pub struct BodyTimedOut(pub Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body was not received within {}",
            humantime::format_duration(self.0)
        )
    }
}

impl std::error::Error for BodyTimedOut {}

/// Whether a body-read error (as `axum`'s body reports it) is [`BodyTimedOut`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A request body that fails once its deadline passes.
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    timed_out: Arc<AtomicBool>,
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.timed_out.store(true, Ordering::Release);
                    Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout)))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted in flight until it ends.
struct Tracked {
    inner: Body,
    _guard: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client socket, reporting arriving bytes to the connection's clocks.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    seen: bool,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result
            && buf.filled().len() > before
        {
            let first = (!this.seen).then(|| &buf.filled()[before..]);
            this.seen = true;
            this.activity.on_read(first);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Drains a body, for tests of this module.
#[cfg(test)]
async fn drain(body: Body) -> Result<Bytes, axum::Error> {
    use http_body_util::BodyExt;
    body.collect().await.map(|c| c.to_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cap_leaves_room_under_a_small_fd_limit() {
        assert_eq!(effective_cap(10_000, Some(1024)), 768);
        assert_eq!(effective_cap(100, Some(1 << 20)), 100);
        assert_eq!(effective_cap(100, None), 100);
        assert_eq!(effective_cap(100, Some(10)), 16);
    }

    #[tokio::test]
    async fn body_timeout_is_recognised_through_axum() {
        let error: Box<dyn std::error::Error + Send + Sync> =
            Box::new(BodyTimedOut(Duration::from_secs(1)));
        let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
            [Err::<Frame<Bytes>, _>(error)],
        )));
        let e = drain(body).await.unwrap_err();
        assert!(is_body_timeout(&e));
    }
}
