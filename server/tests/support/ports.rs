//! Loopback ports for the servers a test starts.
//!
//! Asking the kernel for port 0 and closing it again hands out a port from the ephemeral range, where the next
//! outgoing connection, or the next such request, may take it before the server binds it: a cluster node's bus
//! port once landed on another node's client port that way. So ports come from below the ephemeral range, each
//! handed out at most once per process, starting at an offset of the process ID so that two test binaries side by
//! side rarely meet.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// How many ports one process may hand out.
const SPAN: u32 = 10_000;

/// A loopback port nothing listens on, never handed out before by this process.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let Some((low, span)) = range() else {
        // No room outside the ephemeral range: the kernel's pick, with its race.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        return listener
            .local_addr()
            .expect("a bound socket's address")
            .port();
    };
    let start = std::process::id().wrapping_mul(7_919) % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            n < span,
            "this test process has used all {span} of its ports"
        );
        let port = u16::try_from(low + (start + n) % span).expect("ports fit in u16");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The first port and the number of ports to hand out from: just below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), or just above it when it starts too low; `None` when neither side
/// has room.
fn range() -> Option<(u32, u32)> {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32_768, 60_999));
    if ephemeral.0 >= 1_024 + SPAN {
        Some((ephemeral.0 - SPAN, SPAN))
    } else {
        let low = ephemeral.1 + 1;
        let span = SPAN.min(65_536_u32.saturating_sub(low));
        (span >= 1_000).then_some((low, span))
    }
}
