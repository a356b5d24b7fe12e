//! One SMTP session over a connection the egress guard opened: greeting and `EHLO`, implicit
//! TLS or `STARTTLS`, `AUTH`, the message, `QUIT`.
//!
//! The `smtp` node never lets lettre resolve or connect: [`crate::egress::Guard::connect`]
//! returns a TCP stream to a checked address and lettre's [`AsyncSmtpConnection`] speaks SMTP
//! over it (TLS with lettre's own parameters, so certificates are verified as lettre does).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use lettre::Message;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How the session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Security {
    /// Plain greeting, then a required `STARTTLS`.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS (local relays).
    None,
}

/// Delivers `message` over `stream` to `host` (the name TLS certificates must match),
/// logging in with `login` when given.
pub(super) async fn deliver(
    stream: TcpStream,
    host: &str,
    security: Security,
    login: Option<&(String, String)>,
    message: &Message,
) -> Result<(), SmtpError> {
    let hello = ClientId::default();
    let tls = || TlsParameters::new(host.to_string());
    let mut conn = match security {
        Security::Tls => {
            #[allow(deprecated)]
            let mut net = AsyncNetworkStream::use_existing_tokio1(Box::new(stream));
            net.upgrade_tls(tls()?).await?;
            AsyncSmtpConnection::connect_with_transport(Box::new(Encrypted(net)), &hello).await?
        }
        Security::StartTls | Security::None => {
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello).await?
        }
    };
    if security == Security::StartTls {
        // Fails with "STARTTLS is not supported on this server" when the server lacks it.
        conn.starttls(tls()?, &hello).await?;
    }
    if let Some((username, password)) = login {
        conn.auth(
            &[Mechanism::Plain, Mechanism::Login],
            &Credentials::new(username.clone(), password.clone()),
        )
        .await?;
    }
    conn.send(message.envelope(), &message.formatted()).await?;
    // `QUIT` and close, as lettre's transport does without a pool.
    conn.abort().await;
    Ok(())
}

/// A TLS stream lettre built (implicit TLS), handed back to lettre as a plain transport so
/// that the session starts after the handshake.
#[allow(deprecated)]
#[derive(Debug)]
struct Encrypted(AsyncNetworkStream);

impl AsyncTokioStream for Encrypted {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

impl AsyncRead for Encrypted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        use futures_util::io::AsyncRead as _;
        let unfilled = buf.initialize_unfilled();
        match Pin::new(&mut self.0).poll_read(cx, unfilled) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Encrypted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        use futures_util::io::AsyncWrite as _;
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        use futures_util::io::AsyncWrite as _;
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        use futures_util::io::AsyncWrite as _;
        Pin::new(&mut self.0).poll_close(cx)
    }
}
