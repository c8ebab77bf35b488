//! Loopback ports for the servers the tests start as child processes (gatehouse, slapd,
//! aiosmtpd).
//!
//! A port the kernel hands out for `bind(…:0)` lies in the ephemeral range, where any outgoing
//! connection on the machine may take it between the moment the test picks it and the moment the
//! child binds it ("Address already in use", seen in CI). Ports below the ephemeral range are
//! only ever taken by listeners, so one picked there that binds now, and that this process has
//! not handed out before, stays free for the child.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// The lowest port handed out: above the registered ports most services use.
const LOWEST: u16 = 20_000;

/// A loopback port no listener holds and no outgoing connection can take.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let ephemeral_floor = ephemeral_floor();
    let span = u64::from(ephemeral_floor.saturating_sub(LOWEST).max(1));
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let offset = RandomState::new().hash_one(handed_out.len()) % span;
        let port = LOWEST + u16::try_from(offset).expect("offset < span <= u16::MAX");
        if handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {LOWEST}..{ephemeral_floor}");
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .filter(|floor| *floor > LOWEST + 1000)
        .unwrap_or(32_768)
}
