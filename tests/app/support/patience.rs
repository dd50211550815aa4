//! How long a story waits for what the app does in the background (a webhook applied, a mail
//! sent, an outbox drained) before it fails: by the clock, not by a count of tries, so a
//! loaded machine (two cores, hundreds of tests, load stories beside them) slows a story down
//! instead of failing it. A correct app gets there; a broken one never does, and the story
//! still fails, only later.

use std::time::{Duration, Instant};

/// The longest a story waits for one thing to happen.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Tries until a deadline: `while wait.another_try().await { … }` runs the body at once,
/// then again after each pause, until the body leaves the loop or [`PATIENCE`] is spent.
pub struct Patience {
    deadline: Instant,
    pause: Duration,
    tried: bool,
}

impl Patience {
    /// Tries every `pause` for at most [`PATIENCE`].
    pub fn every(pause: Duration) -> Self {
        Self {
            deadline: Instant::now() + PATIENCE,
            pause,
            tried: false,
        }
    }

    /// Whether to try again: `true` the first time, then after a pause while time is left.
    pub async fn another_try(&mut self) -> bool {
        if !self.tried {
            self.tried = true;
            return true;
        }
        if Instant::now() >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        true
    }
}
