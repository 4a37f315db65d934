//! How far ahead of an upload the HTTP layer may read its connection: a window of bytes per
//! connection, moved on by what the upload's handler takes.
//!
//! actix-http reads a request body ahead into a read buffer of up to 128 KiB per connection
//! (not configurable), whether or not the handler takes it; an upload waiting for its turn to
//! be read then holds that buffer (up to 256 KiB allocated, as it grows by doubling). Every
//! connection is therefore served through [`Throttled`], which stops reading once it is
//! [`WINDOW`] bytes past what the handler has taken, and hands actix at most [`STEP`] bytes
//! between two returns to its dispatcher: the rest of the body waits in the kernel's socket
//! buffers, and the client's sends block.
//!
//! The window only ever holds back a body an upload handler is reading:
//! - a new connection may read [`WINDOW`] bytes: the first request's head and the start of
//!   its body;
//! - every other route opens the connection's window fully ([`open_for_others`]), so a
//!   dashboard's or an API client's keep-alive connection is never held;
//! - an upload's handler takes the body through [`Counted`]: every byte it takes lets one
//!   more be read, and when it waits with nothing left to take, the window is moved to
//!   [`WINDOW`] past what has been read, so it can never wait on a window it cannot move
//!   (chunked framing is read but never handed to it);
//! - when a request is answered, the window is [`WINDOW`] past what was read if an upload's
//!   handler read the body to its end (the next request on the connection starts as on a new
//!   one), else fully open, so that actix can drain or close what is left (a body refused
//!   before its handler ran, for instance).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_util::Stream;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes a connection may read past what its upload's handler has taken.
pub const WINDOW: u64 = 32 << 10;

/// The handler's taking wakes a reader held by the window only once it may read this much:
/// fewer, larger reads.
const WAKE_ROOM: u64 = WINDOW / 4;

/// Bytes read at most between two returns to actix's dispatcher: it decodes what it read into
/// the request's payload before reading more, so its read buffer never holds more than this
/// (it grows by doubling, and keeps what it has consumed, while it holds more: to about four
/// times the window).
const STEP: usize = 8 << 10;

/// The route whose bodies are held to the window; every other route opens it.
pub const UPLOAD_PATH: &str = "/api/upload";

/// One connection's window, shared by its stream (which reads) and its request handlers
/// (which move it). Everything runs on the connection's one HTTP worker thread; the atomics
/// only make it shareable.
#[derive(Debug)]
pub struct Window {
    /// Bytes read from the connection so far.
    read: AtomicU64,
    /// The stream reads no further than this; `u64::MAX` is open.
    limit: AtomicU64,
    /// The connection's reader, parked on a closed window.
    reader: AtomicWaker,
    /// The current request's body was taken to its end by an upload's handler.
    body_taken: AtomicBool,
}

impl Window {
    fn new() -> Self {
        Window {
            read: AtomicU64::new(0),
            limit: AtomicU64::new(WINDOW),
            reader: AtomicWaker::new(),
            body_taken: AtomicBool::new(false),
        }
    }

    /// Bytes read from the connection so far.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Acquire)
    }

    /// How far the stream may read, or `None` when open.
    pub fn limit(&self) -> Option<u64> {
        match self.limit.load(Ordering::Acquire) {
            u64::MAX => None,
            limit => Some(limit),
        }
    }

    fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Release);
        self.reader.wake();
    }

    /// No limit until an upload's handler sets one.
    pub fn open(&self) {
        self.set_limit(u64::MAX);
    }

    /// [`WINDOW`] past what has been read (and never less than now).
    fn reopen(&self) {
        let next = self.read().saturating_add(WINDOW);
        let limit = self.limit.load(Ordering::Acquire);
        if limit == u64::MAX || limit < next {
            self.set_limit(next);
        }
    }

    /// The handler took `bytes`: as many more may be read. The reader is woken once it has
    /// [`WAKE_ROOM`] to read into; a handler that then waits with nothing left to take moves
    /// the window itself (`reopen`), so a smaller room never strands it.
    fn taken(&self, bytes: u64) {
        let limit = self.limit.load(Ordering::Acquire);
        if limit == u64::MAX {
            return;
        }
        let limit = limit.saturating_add(bytes);
        self.limit.store(limit, Ordering::Release);
        if limit.saturating_sub(self.read()) >= WAKE_ROOM {
            self.reader.wake();
        }
    }
}

/// A connection's stream, reading no further than its [`Window`] allows.
#[derive(Debug)]
pub struct Throttled<S> {
    stream: S,
    window: Arc<Window>,
    /// Bytes read since the stream last answered `Pending`.
    since_pending: usize,
}

impl<S> Throttled<S> {
    pub fn new(stream: S) -> Self {
        Throttled {
            stream,
            window: Arc::new(Window::new()),
            since_pending: 0,
        }
    }

    /// The window, for the connection's requests (`HttpRequest::conn_data`).
    pub fn window(&self) -> Arc<Window> {
        self.window.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Throttled<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.since_pending >= STEP {
            // Back to the dispatcher, to decode what it has, and straight on.
            this.since_pending = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let window = &this.window;
        let read = window.read();
        let mut room = window.limit.load(Ordering::Acquire).saturating_sub(read);
        if room == 0 {
            window.reader.register(cx.waker());
            // Moved between the load and the registration?
            room = window.limit.load(Ordering::Acquire).saturating_sub(read);
            if room == 0 {
                this.since_pending = 0;
                return Poll::Pending;
            }
        }
        let room = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(STEP - this.since_pending);
        let (polled, got) = if room >= buf.remaining() {
            let before = buf.filled().len();
            let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
            (polled, buf.filled().len() - before)
        } else {
            // Read into the first `room` bytes of the caller's buffer only (zeroed first, so
            // that no unsafe code is needed to hand them back as filled).
            let mut part = ReadBuf::new(buf.initialize_unfilled_to(room));
            let polled = Pin::new(&mut this.stream).poll_read(cx, &mut part);
            let got = part.filled().len();
            buf.advance(got);
            (polled, got)
        };
        window.read.fetch_add(got as u64, Ordering::AcqRel);
        if polled.is_pending() {
            this.since_pending = 0;
        } else {
            this.since_pending += got;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Throttled<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Middleware: a request for any route but uploads opens its connection's window; after any
/// request, the window is open again unless an upload's handler took the whole body (then
/// it is [`WINDOW`] past what was read, as on a new connection), so that actix can drain or
/// close a body nobody read (one refused before its handler ran, for instance).
pub async fn open_for_others(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let window = request.conn_data::<Arc<Window>>().cloned();
    if let Some(window) = &window {
        window.body_taken.store(false, Ordering::Release);
        if request.path() != UPLOAD_PATH {
            window.open();
        }
    }
    let answer = next.call(request).await;
    if let Some(window) = &window {
        if window.body_taken.load(Ordering::Acquire) {
            window.reopen();
        } else {
            window.open();
        }
    }
    answer.map(ServiceResponse::map_into_boxed_body)
}

/// An upload's body, moving its connection's window as the handler takes it. Without a
/// window (a server built without [`Throttled`], as in unit tests) it only passes the body on.
pub struct Counted<S> {
    body: S,
    window: Option<Arc<Window>>,
}

/// Holds `body` to `window`: a connection opened by an earlier request gets a window again,
/// from what has been read.
pub fn hold<S>(body: S, window: Option<Arc<Window>>) -> Counted<S> {
    if let Some(window) = &window
        && window.limit().is_none()
    {
        window.reopen();
    }
    Counted { body, window }
}

impl<S, E> Stream for Counted<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_next(cx);
        if let Some(window) = &this.window {
            match &polled {
                Poll::Ready(Some(Ok(chunk))) => window.taken(chunk.len() as u64),
                Poll::Ready(None) => window.body_taken.store(true, Ordering::Release),
                // Nothing to take: what was read has been taken or is on its way; never
                // wait on a window that only the taking could move.
                Poll::Pending => window.reopen(),
                Poll::Ready(Some(Err(_))) => {}
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    /// A new connection whose client sent `sent` bytes, read as far as the window allows:
    /// the client's end, the server's, the buffer read into and how much it holds.
    async fn a_full_window(
        sent: usize,
    ) -> (
        tokio::io::DuplexStream,
        Throttled<tokio::io::DuplexStream>,
        Vec<u8>,
        usize,
    ) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut server = Throttled::new(server);
        client.write_all(&vec![7u8; sent]).await.expect("written");
        let mut got = vec![0u8; sent];
        let mut read = 0;
        while read < WINDOW as usize {
            read += server.read(&mut got[read..]).await.expect("read");
        }
        (client, server, got, read)
    }

    /// A read that does not complete within a short while.
    async fn stalls(stream: &mut Throttled<tokio::io::DuplexStream>) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(std::time::Duration::from_millis(50), stream.read(&mut byte))
            .await
            .is_err()
    }

    #[test]
    fn a_new_connection_reads_one_window_then_waits_for_the_handler() {
        runtime().block_on(async {
            let (_client, mut server, mut got, read) = a_full_window(200_000).await;
            let window = server.window();
            assert_eq!(read as u64, WINDOW);
            assert!(stalls(&mut server).await, "read past the window");
            // The handler takes 1,000 bytes: 1,000 more may be read, and no more.
            window.taken(1000);
            let more = server.read(&mut got[read..]).await.expect("read");
            assert_eq!(more, 1000);
            assert!(stalls(&mut server).await);
            window.open();
            let rest = server.read(&mut got[read + more..]).await.expect("read");
            assert!(rest > 0);
        });
    }

    #[test]
    fn actix_is_handed_one_step_at_a_time_and_woken_for_the_next() {
        runtime().block_on(async {
            let (mut client, server) = tokio::io::duplex(1 << 20);
            let mut server = Throttled::new(server);
            server.window().open();
            client
                .write_all(&vec![3u8; 100_000])
                .await
                .expect("written");
            let mut buf = vec![0u8; 64 << 10];
            let woken = std::sync::Arc::new(Woken::default());
            let waker = std::task::Waker::from(woken.clone());
            let mut cx = Context::from_waker(&waker);
            let mut read = ReadBuf::new(&mut buf);
            // One read may take a step, however much the caller's buffer and the socket hold.
            assert!(
                Pin::new(&mut server)
                    .poll_read(&mut cx, &mut read)
                    .is_ready()
            );
            assert_eq!(read.filled().len(), STEP);
            // The next answers Pending, having woken its task to go straight on.
            assert!(
                Pin::new(&mut server)
                    .poll_read(&mut cx, &mut read)
                    .is_pending()
            );
            assert!(
                woken.0.load(Ordering::Acquire),
                "not woken for the next step"
            );
            assert!(
                Pin::new(&mut server)
                    .poll_read(&mut cx, &mut read)
                    .is_ready()
            );
            assert_eq!(read.filled().len(), 2 * STEP);
        });
    }

    /// A waker that records that it was woken.
    #[derive(Default)]
    struct Woken(AtomicBool);

    impl std::task::Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::Release);
        }
    }

    #[test]
    fn a_handler_that_waits_on_an_empty_body_moves_the_window() {
        runtime().block_on(async {
            let (_client, server, _, _) = a_full_window(100_000).await;
            // A body that has nothing to give (its framing was read, not handed over).
            let empty = futures_util::stream::pending::<Result<Bytes, ()>>();
            let mut body = hold(empty, Some(server.window()));
            let waker = futures_util::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut body).poll_next(&mut cx).is_pending());
            assert_eq!(server.window().limit(), Some(2 * WINDOW));
        });
    }

    #[test]
    fn an_open_connection_gets_a_window_again_for_an_upload() {
        let window = Arc::new(Window::new());
        window.open();
        window.read.store(5_000, Ordering::Release);
        let chunks = futures_util::stream::iter(vec![Ok::<_, ()>(Bytes::from_static(b"abc"))]);
        let mut body = hold(chunks, Some(window.clone()));
        // An open connection gets a window from what it had read.
        assert_eq!(window.limit(), Some(5_000 + WINDOW));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(
            Pin::new(&mut body).poll_next(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert_eq!(window.limit(), Some(5_003 + WINDOW));
        assert!(matches!(
            Pin::new(&mut body).poll_next(&mut cx),
            Poll::Ready(None)
        ));
        assert!(window.body_taken.load(Ordering::Acquire));
    }
}
