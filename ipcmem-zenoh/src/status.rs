//! Counting a bridge's traffic and printing a status line every second.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Running totals of a bridge, shared between its loop and whoever reports them.
#[derive(Debug, Default)]
pub struct Stats {
    frames: AtomicU64,
    bytes: AtomicU64,
    lost: AtomicU64,
    refused: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Frames carried (published on Zenoh, or written into the local stream).
    pub frames: u64,
    /// Bytes of frames carried (frame data only, not headers).
    pub bytes: u64,
    /// Frames lost: missed by the publisher's reader, or gaps in the serials received.
    pub lost: u64,
    /// Messages refused (they did not decode).
    pub refused: u64,
}

impl Stats {
    /// Counts one frame of `bytes` bytes carried, after `lost` frames lost.
    pub fn record(&self, bytes: usize, lost: u64) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.lost.fetch_add(lost, Ordering::Relaxed);
    }

    /// Counts one message refused.
    pub fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals now.
    pub fn totals(&self) -> Totals {
        Totals {
            frames: self.frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// The status line for the interval from `before` to `now`, `elapsed` long.
pub fn status_line(label: &str, before: Totals, now: Totals, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    #[allow(clippy::cast_precision_loss)] // rates for a human; f64 is precise enough
    let (rate, mbytes) =
        ((now.frames - before.frames) as f64 / seconds, (now.bytes - before.bytes) as f64 / seconds / 1e6);
    let refused = if now.refused > 0 { format!(", {} refused", now.refused) } else { String::new() };
    format!(
        "{label}: {rate:.1} frames/s, {mbytes:.1} MB/s, lost {} (total: {} frames, {} lost{refused})",
        now.lost - before.lost,
        now.frames,
        now.lost
    )
}

/// Prints a status line to stderr every second until `stop` is raised or `done` is.
pub fn report_every_second(label: &str, stats: &Stats, stop: &AtomicBool, done: &AtomicBool) {
    let mut before = stats.totals();
    let mut since = Instant::now();
    while !stop.load(Ordering::Relaxed) && !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if since.elapsed() >= Duration::from_secs(1) {
            let now = stats.totals();
            let line = status_line(label, before, now, since.elapsed());
            // A closed stderr is no reason to stop bridging.
            let _ = writeln!(std::io::stderr(), "{line}");
            before = now;
            since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_shows_rates_and_loss() {
        let before = Totals { frames: 10, bytes: 1_000_000, lost: 1, refused: 0 };
        let now = Totals { frames: 110, bytes: 101_000_000, lost: 4, refused: 0 };
        let line = status_line("publish /cam", before, now, Duration::from_secs(1));
        assert_eq!(line, "publish /cam: 100.0 frames/s, 100.0 MB/s, lost 3 (total: 110 frames, 4 lost)");
    }
}
