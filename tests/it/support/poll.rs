//! Bounded polling: the one way these tests wait for work done by another
//! task, thread or process. A wait names what it waits for and has a bound;
//! past the bound it panics with that name and the last thing it saw, so a
//! slow machine fails with a reason instead of a bare assertion.
//!
//! Nothing here sleeps a fixed time and then asserts. A test that must show
//! that something did *not* happen waits here for a later event which proves
//! the work that could have done it has run, and only then asserts.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// The usual bound of a wait: far beyond what any of these waits takes on
/// an idle machine, so only a stuck condition (or a machine many times too
/// slow) reaches it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The first pause between two looks. Pauses double up to [`MAX_PAUSE`], so
/// a quick condition is seen at once and a slow one is not hammered.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// What one look at a condition found: `Ok` with the value waited for, or
/// `Err` with what was seen instead (`None` when there is nothing to tell).
pub trait Look<T> {
    fn ready(self) -> Result<T, Option<String>>;
}

impl Look<()> for bool {
    fn ready(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Look<T> for Option<T> {
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Look<T> for Result<T, E> {
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// A wait that reached its bound: what it waited for, and the last look.
#[derive(Debug)]
pub struct Timeout {
    what: String,
    limit: Duration,
    last: Option<String>,
}

impl Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gave up after {:?} waiting for {}",
            self.limit, self.what
        )?;
        match &self.last {
            Some(last) => write!(f, "; last seen: {last}"),
            None => Ok(()),
        }
    }
}

/// Polls `check` until it is ready and returns its value; panics naming
/// `what` once `limit` has passed. The usual wait: [`Wait`] has the options.
pub async fn until<T, L: Look<T>>(what: &str, limit: Duration, check: impl AsyncFnMut() -> L) -> T {
    Wait::new(what, limit).until(check).await
}

/// A bounded wait. The bound is real time, measured between looks, so a
/// look that is itself slow (a request to a stopped node) may overrun it
/// by its own length; there is always one last look at the bound.
pub struct Wait {
    what: String,
    limit: Duration,
    /// A fixed pause between looks; `None` backs off from [`FIRST_PAUSE`].
    every: Option<Duration>,
}

impl Wait {
    /// A wait for `what`, given up after `limit`.
    pub fn new(what: &str, limit: Duration) -> Wait {
        Wait {
            what: what.to_string(),
            limit,
            every: None,
        }
    }

    /// Looks every `pause` instead of backing off: for looks that cost
    /// something, such as a wrong token counting toward a lockout.
    pub fn every(self, pause: Duration) -> Wait {
        Wait {
            every: Some(pause),
            ..self
        }
    }

    /// Polls `check` until it is ready; panics with the [`Timeout`].
    pub async fn until<T, L: Look<T>>(self, check: impl AsyncFnMut() -> L) -> T {
        self.try_until(check)
            .await
            .unwrap_or_else(|timeout| panic!("{timeout}"))
    }

    /// Polls `check` until it is ready, or returns the [`Timeout`] so the
    /// caller can add what it knows (a cluster's logs) before failing.
    pub async fn try_until<T, L: Look<T>>(
        self,
        mut check: impl AsyncFnMut() -> L,
    ) -> Result<T, Timeout> {
        let mut pace = Pace::new(self.limit, self.every);
        loop {
            let last = match check().await.ready() {
                Ok(value) => return Ok(value),
                Err(last) => last,
            };
            match pace.next() {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(self.timeout(last)),
            }
        }
    }

    /// [`Wait::try_until`] for code without a runtime: it blocks the thread.
    pub fn try_until_blocking<T, L: Look<T>>(
        self,
        mut check: impl FnMut() -> L,
    ) -> Result<T, Timeout> {
        let mut pace = Pace::new(self.limit, self.every);
        loop {
            let last = match check().ready() {
                Ok(value) => return Ok(value),
                Err(last) => last,
            };
            match pace.next() {
                Some(pause) => std::thread::sleep(pause),
                None => return Err(self.timeout(last)),
            }
        }
    }

    fn timeout(self, last: Option<String>) -> Timeout {
        Timeout {
            what: self.what,
            limit: self.limit,
            last,
        }
    }
}

/// When to look next: the pauses of one wait, up to its deadline.
struct Pace {
    deadline: Instant,
    pause: Duration,
    fixed: bool,
}

impl Pace {
    fn new(limit: Duration, every: Option<Duration>) -> Pace {
        Pace {
            deadline: Instant::now() + limit,
            pause: every.unwrap_or(FIRST_PAUSE),
            fixed: every.is_some(),
        }
    }

    /// The pause before the next look, or `None` once the deadline has
    /// passed. The last pause is cut short so that a look falls on it.
    fn next(&mut self) -> Option<Duration> {
        let left = self.deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        let pause = self.pause.min(left);
        if !self.fixed {
            self.pause = (self.pause * 2).min(MAX_PAUSE);
        }
        Some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait returns the value of the first ready look, however it is told.
    #[tokio::test]
    async fn returns_the_first_ready_value() {
        let mut looks = 0;
        let seen = until("the third look", Duration::from_secs(5), async || {
            looks += 1;
            (looks == 3).then_some(looks)
        })
        .await;
        assert_eq!(seen, 3);
        until("a true bool", Duration::from_secs(5), async || true).await;
        let value: u8 = until("an Ok", Duration::from_secs(5), async || {
            Ok::<u8, String>(7)
        })
        .await;
        assert_eq!(value, 7);
    }

    /// Past its bound a wait names what it waited for and the last look,
    /// having looked again at the bound.
    #[test]
    fn a_timeout_names_the_wait_and_the_last_look() {
        let mut looks = 0;
        let started = Instant::now();
        let timeout = Wait::new("the impossible", Duration::from_millis(50))
            .try_until_blocking(|| {
                looks += 1;
                Err::<(), _>(format!("look {looks}"))
            })
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        let message = timeout.to_string();
        assert!(message.contains("waiting for the impossible"), "{message}");
        assert!(
            message.ends_with(&format!("last seen: look {looks}")),
            "{message}"
        );
    }

    /// A fixed pause is kept (sleeps never end early, so 100 ms pauses
    /// within 250 ms allow at most four looks), and the last pause is cut
    /// short so that one look falls on the bound.
    #[test]
    fn a_fixed_pause_looks_at_the_bound() {
        let mut looks = 0;
        let mut last_look = Instant::now();
        let started = Instant::now();
        let timeout = Wait::new("nothing", Duration::from_millis(250))
            .every(Duration::from_millis(100))
            .try_until_blocking(|| {
                looks += 1;
                last_look = Instant::now();
                false
            })
            .unwrap_err();
        assert!((2..=4).contains(&looks), "{looks} looks");
        assert!(last_look - started >= Duration::from_millis(250));
        assert_eq!(
            timeout.to_string(),
            "gave up after 250ms waiting for nothing"
        );
    }
}
