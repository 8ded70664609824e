//! A per-IP limit on wrong admin tokens, so the token cannot be guessed at
//! network speed: after [`MAX_FAILURES`] wrong tokens within [`WINDOW`], an
//! address is refused (429 with `Retry-After`) until its window ends, even
//! with the right token, so the answer leaks nothing.
//!
//! In memory, per node, bounded to [`MAX_CLIENTS`] addresses. Behind a
//! reverse proxy every client shares the proxy's address; the limit then
//! applies to all of them together (no forwarded header is trusted).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Wrong tokens allowed per address within one window.
pub const MAX_FAILURES: u32 = 10;
/// The window, counted from an address's first wrong token.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Addresses remembered at most; past this, the oldest window is dropped.
pub const MAX_CLIENTS: usize = 10_000;

/// Wrong-token counts per client address.
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Default for FailureLimiter {
    fn default() -> FailureLimiter {
        FailureLimiter::new(MAX_FAILURES, WINDOW)
    }
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            window,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` if `ip` has used up its wrong tokens, with how long until
    /// it may try again.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        match clients.get(&ip) {
            Some(window) if window.failures >= self.max_failures => {
                let elapsed = now.saturating_duration_since(window.started);
                match self.window.checked_sub(elapsed) {
                    Some(wait) if !wait.is_zero() => Err(wait),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one wrong token from `ip`.
    pub fn fail(&self, ip: IpAddr, now: Instant) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let window = self.window;
        let expired = |entry: &Window| now.saturating_duration_since(entry.started) >= window;
        if !clients.contains_key(&ip) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, entry| !expired(entry));
            if clients.len() >= MAX_CLIENTS
                && let Some(oldest) = clients
                    .iter()
                    .min_by_key(|(_, entry)| entry.started)
                    .map(|(ip, _)| *ip)
            {
                clients.remove(&oldest);
            }
        }
        let entry = clients.entry(ip).or_insert(Window {
            started: now,
            failures: 0,
        });
        if expired(entry) {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// How many addresses are remembered (for tests of the bound).
    pub fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    /// The Nth wrong token locks the address out for the rest of its
    /// window; other addresses are unaffected; the lock ends with the window.
    #[test]
    fn addresses_are_limited_separately_until_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(300));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip(1), start), Ok(()));
            limiter.fail(ip(1), start);
        }
        let later = start + Duration::from_secs(100);
        assert_eq!(limiter.check(ip(1), later), Err(Duration::from_secs(200)));
        assert_eq!(limiter.check(ip(2), later), Ok(()));
        let after = start + Duration::from_secs(300);
        assert_eq!(limiter.check(ip(1), after), Ok(()));
        limiter.fail(ip(1), after);
        assert_eq!(limiter.check(ip(1), after), Ok(()));
    }

    /// The table never grows past its bound.
    #[test]
    fn memory_is_bounded() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(300));
        let now = Instant::now();
        for index in 0..(MAX_CLIENTS as u32 + 50) {
            let address = IpAddr::V4(Ipv4Addr::from(index));
            limiter.fail(address, now + Duration::from_millis(u64::from(index)));
        }
        assert_eq!(limiter.len(), MAX_CLIENTS);
    }
}
