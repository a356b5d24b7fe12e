//! Finding a TCP port on 127.0.0.1 that nobody listens on.

/// A TCP port nobody listens on right now (bound, read, released). Someone else may take it
/// before the caller binds it: callers that cannot afford that retry with another port.
pub fn try_free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// [`try_free_port`] for tests, where a machine without a free port is a broken test setup.
///
/// # Panics
/// When no port on 127.0.0.1 can be bound.
pub fn free_port() -> u16 {
    try_free_port().expect("bind an ephemeral port on 127.0.0.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }
}
