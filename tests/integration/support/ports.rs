//! A loopback address that refuses connections for as long as a test needs it.

use std::os::fd::{FromRawFd, OwnedFd};

/// A TCP port on 127.0.0.1 that is bound but not listening: connecting to it is refused,
/// and no other test's server can take it while this lives (a port picked by binding and
/// then releasing it could be reused at once by a server another test starts).
pub struct ClosedPort {
    _socket: OwnedFd,
    pub addr: String,
}

pub fn closed_port() -> ClosedPort {
    // SAFETY: plain socket calls on a descriptor we own; every result is checked.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let socket = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let bound = libc::bind(fd, (&raw const sa).cast(), len);
        assert_eq!(bound, 0, "bind 127.0.0.1:0: {}", std::io::Error::last_os_error());
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut got_len = len;
        let named = libc::getsockname(fd, (&raw mut got).cast(), &mut got_len);
        assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
        ClosedPort { _socket: socket, addr: format!("127.0.0.1:{}", u16::from_be(got.sin_port)) }
    }
}

#[test]
fn a_closed_port_refuses_connections() {
    let port = closed_port();
    let err = std::net::TcpStream::connect(&port.addr).expect_err("nothing listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}
