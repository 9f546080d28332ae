//! What one scenario found: the cells of its table row, the checks it failed and what it
//! noticed on the way. Shared with the scenario's task, so a scenario that panics or runs
//! out of time still leaves what it had recorded.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) name: &'static str,
    pub(crate) fault: &'static str,
    pub(crate) load: String,
    pub(crate) injected: String,
    pub(crate) bad_inputs: String,
    /// Acknowledged writes missing at the end; `None` where the scenario does not measure it.
    pub(crate) lost: Option<u64>,
    /// Checks that did not hold: any one fails the scenario.
    pub(crate) failures: Vec<String>,
    /// Worth knowing, but not what the scenario checks (e.g. INTERNAL for a malformed frame).
    pub(crate) findings: Vec<String>,
    /// Figures behind the row (recovery times, counts by status code).
    pub(crate) notes: Vec<String>,
    pub(crate) took: Duration,
}

impl Outcome {
    pub(crate) fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Clone)]
pub(crate) struct Recorder {
    outcome: Arc<Mutex<Outcome>>,
    started: Instant,
}

impl Recorder {
    pub(crate) fn new(name: &'static str, fault: &'static str) -> Self {
        Self {
            outcome: Arc::new(Mutex::new(Outcome {
                name,
                fault,
                ..Outcome::default()
            })),
            started: Instant::now(),
        }
    }

    fn with<T>(&self, change: impl FnOnce(&mut Outcome) -> T) -> T {
        change(&mut self.outcome.lock().expect("outcome lock poisoned"))
    }

    /// A progress line on stderr, so a slow or stuck scenario shows where it is.
    pub(crate) fn say(&self, line: impl AsRef<str>) {
        let name = self.with(|outcome| outcome.name);
        eprintln!(
            "[{name} {:>6.1}s] {}",
            self.started.elapsed().as_secs_f64(),
            line.as_ref()
        );
    }

    pub(crate) fn load(&self, text: impl Into<String>) {
        let text = text.into();
        self.with(|outcome| outcome.load = text);
    }

    pub(crate) fn injected(&self, text: impl Into<String>) {
        let text = text.into();
        self.with(|outcome| outcome.injected = text);
    }

    pub(crate) fn bad_inputs(&self, text: impl Into<String>) {
        let text = text.into();
        self.with(|outcome| outcome.bad_inputs = text);
    }

    pub(crate) fn lost(&self, lost: u64) {
        self.with(|outcome| *outcome.lost.get_or_insert(0) += lost);
    }

    pub(crate) fn fail(&self, what: impl Into<String>) {
        let what = what.into();
        self.say(format!("FAILED: {what}"));
        self.with(|outcome| outcome.failures.push(what));
    }

    /// Fails with `what` unless `holds`.
    pub(crate) fn check(&self, holds: bool, what: impl FnOnce() -> String) {
        if !holds {
            self.fail(what());
        }
    }

    pub(crate) fn finding(&self, what: impl Into<String>) {
        let what = what.into();
        self.say(format!("finding: {what}"));
        self.with(|outcome| outcome.findings.push(what));
    }

    pub(crate) fn note(&self, what: impl Into<String>) {
        let what = what.into();
        self.say(&what);
        self.with(|outcome| outcome.notes.push(what));
    }

    pub(crate) fn finish(&self) -> Outcome {
        let took = self.started.elapsed();
        self.with(|outcome| {
            outcome.took = took;
            outcome.clone()
        })
    }
}

/// `1234` as `1,234`, for the table.
pub(crate) fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn lost_adds_up_once_measured() {
        let recorder = Recorder::new("x", "y");
        assert_eq!(recorder.finish().lost, None);
        recorder.lost(0);
        recorder.lost(2);
        assert_eq!(recorder.finish().lost, Some(2));
    }
}
