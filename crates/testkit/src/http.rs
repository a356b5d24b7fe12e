//! A minimal HTTP/1.1 GET against 127.0.0.1 for probing services under test (`/readyz`,
//! `/metrics`), without an HTTP client crate in the shipped binary.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a probe may take before it counts as "nothing answers".
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET path` on 127.0.0.1:port; the whole response (status line, headers, body), `None` if
/// nothing answers within 5 s.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
}

/// `GET path` on 127.0.0.1:port; the status code, `None` if nothing answers within 5 s.
pub async fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let response = http_get(port, path).await?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// The sum of the samples of the Prometheus series `name` (exact series text, e.g.
/// `baton_hop_message_bytes_bucket{le="4096"}`) in a `/metrics` page; 0 when absent.
pub fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .filter_map(|value| value.trim().parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_exact_series() {
        let page = "# TYPE x counter\n\
                    baton_x_count 3\n\
                    baton_x_count_total 100\n\
                    baton_x_bucket{le=\"10\"} 2\n\
                    baton_x_bucket{le=\"100\"} 5\n\
                    baton_x_count 4.5\n";
        assert_eq!(metric_sum(page, "baton_x_count"), 7.5);
        assert_eq!(metric_sum(page, "baton_x_bucket{le=\"100\"}"), 5.0);
        assert_eq!(metric_sum(page, "baton_y"), 0.0);
    }

    #[tokio::test]
    async fn reads_the_status_of_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .await;
        });
        assert_eq!(http_get_status(port, "/readyz").await, Some(503));
    }

    #[tokio::test]
    async fn nothing_listening_is_none() {
        let port = crate::free_port();
        assert_eq!(http_get_status(port, "/readyz").await, None);
    }
}
