//! A section of the benchmark: the flag that selects it, its default counts, and the code that
//! measures and prints it.

use crate::failure::Outcome;
use crate::Options;

/// One part of the benchmark, selected by `--FLAG`.
#[derive(Debug)]
pub struct Section {
    /// Its flag, without the dashes (`pingpong` for `--pingpong`).
    pub flag: &'static str,
    /// The help of the flag.
    pub help: &'static str,
    /// Whether a run without section flags runs it.
    pub in_default_run: bool,
    /// Whether it makes objects of `--size`: then the free space is checked before the run.
    pub large: bool,
    /// Repetitions of a whole measurement, by default.
    pub reps: Counts,
    /// Iterations of a small measurement, by default.
    pub iterations: Counts,
    /// Measures and prints the section's tables.
    pub run: fn(&Settings) -> Outcome,
}

/// A default count: for a full run and with `--quick`.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// Without `--quick`.
    pub full: usize,
    /// With `--quick`.
    pub quick: usize,
}

impl Counts {
    /// No count: the section has nothing of the kind.
    pub const NONE: Counts = Counts { full: 0, quick: 0 };
}

/// What one section measures, and how often: its defaults, unless the command line says.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Whether `--quick` was given: small batches, few repetitions.
    pub quick: bool,
    /// The size of the large objects.
    pub size: usize,
    /// Repetitions of each whole measurement.
    pub reps: usize,
    /// Iterations of each small measurement.
    pub iterations: usize,
}

impl Settings {
    /// The settings of `section` under `options`.
    pub fn new(options: &Options, section: &Section) -> Settings {
        let pick = |counts: Counts| if options.quick { counts.quick } else { counts.full };
        Settings {
            quick: options.quick,
            size: options.size.unwrap_or(if options.quick { 4 << 20 } else { 1 << 30 }),
            reps: options.reps.map_or(pick(section.reps), |n| n as usize),
            iterations: options.iterations.map_or(pick(section.iterations), |n| n as usize),
        }
    }
}
