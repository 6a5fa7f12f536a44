//! Samples, their medians and percentiles, and the Markdown tables they are printed in.

use std::time::Duration;

/// The times one variant took, one per iteration or run.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Room for `n` samples, so that recording allocates nothing while timing.
    pub fn with_capacity(n: usize) -> Samples {
        Samples(Vec::with_capacity(n))
    }

    /// The samples, in the order recorded.
    pub fn iter(&self) -> impl Iterator<Item = &Duration> {
        self.0.iter()
    }

    /// The shortest; zero if empty.
    pub fn min(&self) -> Duration {
        self.0.iter().min().copied().unwrap_or_default()
    }

    /// The longest; zero if empty.
    pub fn max(&self) -> Duration {
        self.0.iter().max().copied().unwrap_or_default()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Records one time.
    pub fn push(&mut self, time: Duration) {
        self.0.push(time);
    }

    /// Records the times of `other` too.
    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    /// The median (the mean of the two middle values of an even count); zero if empty.
    pub fn median(&self) -> Duration {
        let sorted = self.sorted();
        match sorted.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
        }
    }

    /// The median of the means of `n` consecutive samples (a last, shorter run is left out).
    ///
    /// For times near the resolution of the clock: a mean of `n` consecutive times is their
    /// span divided by `n`, exact to the clock's tick over `n`, where a single time is off by
    /// up to a tick. `n` stays small, so that a rare slow sample spoils few means.
    pub fn median_of_means(&self, n: usize) -> Duration {
        let n = n.max(1);
        let means: Vec<Duration> =
            self.0.chunks_exact(n).map(|run| run.iter().sum::<Duration>() / u32::try_from(n).unwrap_or(1)).collect();
        Samples(means).median()
    }

    /// The value below which `fraction` of the samples lie (nearest rank); zero if empty.
    pub fn percentile(&self, fraction: f64) -> Duration {
        let sorted = self.sorted();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = (fraction * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    /// Every sample less `overhead` (what the timing itself added), at least zero.
    pub fn less(&self, overhead: Duration) -> Samples {
        Samples(self.0.iter().map(|time| time.saturating_sub(overhead)).collect())
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        sorted
    }
}

/// The ratio of two times, `time / baseline`.
pub fn ratio(time: Duration, baseline: Duration) -> f64 {
    if baseline.is_zero() {
        return f64::NAN;
    }
    time.as_secs_f64() / baseline.as_secs_f64()
}

/// A ratio with two decimals (`—` where undefined).
pub fn format_ratio(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}")
    } else {
        "—".into()
    }
}

/// A time with three significant digits in the unit that suits it: `812 ns`, `20.6 µs`,
/// `1.24 s`.
pub fn duration(time: Duration) -> String {
    seconds(time.as_secs_f64())
}

/// [`duration`] of a time in seconds, also below a nanosecond's precision: `1.95 ns`.
pub fn seconds(time: f64) -> String {
    let nanos = time * 1e9;
    let (value, unit) = match nanos {
        n if n < 1e3 => (n, "ns"),
        n if n < 1e6 => (n / 1e3, "µs"),
        n if n < 1e9 => (n / 1e6, "ms"),
        n => (n / 1e9, "s"),
    };
    format!("{} {unit}", significant(value))
}

/// Bytes in the largest binary unit that divides them: `4 KiB`, `1 GiB`, `1000 B`.
pub fn bytes(n: usize) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} B")
}

/// Bytes, roughly, in the largest binary unit they reach: `23.5 GiB`, `512 B`.
pub fn approximate_bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // three digits are shown
    let n = n as f64;
    for (unit, size) in [("GiB", 1_073_741_824.0), ("MiB", 1_048_576.0), ("KiB", 1024.0)] {
        if n >= size {
            return format!("{} {unit}", significant(n / size));
        }
    }
    format!("{n} B")
}

/// Bytes per second, in GB/s (10^9), of `bytes` in `seconds`.
pub fn bandwidth(bytes: usize, seconds: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // three digits are shown
    let bytes = bytes as f64;
    bytes / seconds / 1e9
}

/// `value` with three significant digits (more before the point if it is that large).
pub fn significant(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 || v == 0.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        v if v >= 1.0 => format!("{value:.2}"),
        _ => format!("{value:.3}"),
    }
}

/// A Markdown table, its columns padded to line up in a terminal as well.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|title| (*title).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row (as many cells as titles).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as Markdown lines.
    pub fn render(&self) -> String {
        let width = |column: usize| {
            self.rows.iter().chain([&self.header]).map(|row| row.get(column).map_or(0, |c| c.chars().count())).max()
        };
        let widths: Vec<usize> = (0..self.header.len()).map(|column| width(column).unwrap_or(0).max(3)).collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(column, width)| {
                    let cell = cells.get(column).map_or("", String::as_str);
                    format!("{cell}{}", " ".repeat(width - cell.chars().count().min(*width)))
                })
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        let mut lines = vec![line(&self.header), format!("|-{}-|", rule.join("-|-"))];
        lines.extend(self.rows.iter().map(|row| line(row)));
        lines.join("\n")
    }
}

/// One row of a table that compares each way of doing a thing with the raw calls of its kind.
pub struct Compared<'a> {
    /// "POSIX" or "System V".
    pub kind: &'a str,
    /// What the row measures.
    pub how: &'a str,
    /// Whether this row is the raw calls, the baseline of the rows of its kind that follow.
    pub raw: bool,
    /// The row's median.
    pub median: Duration,
}

/// The table `kind | how | median | ratio to raw`; each raw row is the baseline of the rows
/// after it, up to the next raw row.
pub fn ratio_to_raw_table<'a>(rows: impl IntoIterator<Item = Compared<'a>>) -> Table {
    let mut table = Table::new(&["kind", "how", "median", "ratio to raw"]);
    let mut baseline = Duration::ZERO;
    for row in rows {
        if row.raw {
            baseline = row.median;
        }
        table.row(vec![
            row.kind.into(),
            row.how.into(),
            duration(row.median),
            format_ratio(ratio(row.median, baseline)),
        ]);
    }
    table
}

/// Prints a [`section`].
pub fn print_section(title: &str, about: &str, table: &Table, notes: &[String]) {
    println!("{}", section(title, about, table, notes));
}

/// A section of the output: its title, what it measures, the table, and notes.
pub fn section(title: &str, about: &str, table: &Table, notes: &[String]) -> String {
    let mut text = format!("\n## {title}\n\n{about}\n\n{}", table.render());
    for note in notes {
        text.push_str("\n\n");
        text.push_str(note);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(micros: &[u64]) -> Samples {
        let mut samples = Samples::default();
        for &m in micros {
            samples.push(Duration::from_micros(m));
        }
        samples
    }

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(samples(&[3, 1, 2]).median(), Duration::from_micros(2));
        assert_eq!(samples(&[4, 1, 2, 3]).median(), Duration::from_nanos(2500));
        assert_eq!(samples(&[]).median(), Duration::ZERO);
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(samples(&hundred).percentile(0.99), Duration::from_micros(99));
        assert_eq!(samples(&[5]).percentile(0.99), Duration::from_micros(5));
        assert_eq!(samples(&[1, 3, 10, 10, 2, 2, 7]).median_of_means(2), Duration::from_micros(2));
        assert_eq!(samples(&[1, 2]).median_of_means(3), Duration::ZERO);
        // 5 - 2 and 1 - 2, which stops at zero.
        assert_eq!(samples(&[5, 1]).less(Duration::from_micros(2)).median(), Duration::from_nanos(1500));
    }

    #[test]
    fn formats() {
        assert_eq!(duration(Duration::from_nanos(812)), "812 ns");
        assert_eq!(duration(Duration::from_nanos(20_640)), "20.6 µs");
        assert_eq!(duration(Duration::from_millis(1240)), "1.24 s");
        assert_eq!(duration(Duration::from_nanos(115)), "115 ns");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(1 << 30), "1 GiB");
        assert_eq!(bytes(1000), "1000 B");
        assert_eq!(approximate_bytes(24_684_084 * 1024), "23.5 GiB");
        assert_eq!(approximate_bytes(512), "512 B");
        assert_eq!(format_ratio(1.214), "1.21");
        assert_eq!(format_ratio(f64::NAN), "—");
    }

    #[test]
    fn tables_line_up() {
        let mut table = Table::new(&["a", "time"]);
        table.row(vec!["long name".into(), "1 µs".into()]);
        assert_eq!(table.render(), "| a         | time |\n|-----------|------|\n| long name | 1 µs |");
    }
}
