//! The table printed at the end, then each scenario's failures, findings and figures.

use std::fmt::Write;

use crate::outcome::Outcome;

const HEADER: [&str; 6] = [
    "fault",
    "load held",
    "faults injected",
    "bad inputs tried",
    "lost",
    "result",
];

/// A Markdown table with aligned columns, readable in a terminal and pasteable as is.
pub(crate) fn table(outcomes: &[Outcome]) -> String {
    let rows: Vec<[String; 6]> = outcomes
        .iter()
        .map(|outcome| {
            [
                outcome.fault.to_owned(),
                dash_if_empty(&outcome.load),
                dash_if_empty(&outcome.injected),
                dash_if_empty(&outcome.bad_inputs),
                outcome
                    .lost
                    .map_or_else(|| "-".to_owned(), |lost| lost.to_string()),
                if outcome.passed() { "pass" } else { "FAIL" }.to_owned(),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        out.push('|');
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(out, " {cell}{} |", " ".repeat(width - cell.chars().count()));
        }
        out.push('\n');
    };
    line(&HEADER.map(str::to_owned));
    line(&widths.map(|width| "-".repeat(width)));
    for row in &rows {
        line(row);
    }
    out
}

fn dash_if_empty(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// Per scenario: its time, then what failed, what was found and the figures behind its row.
pub(crate) fn details(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        let verdict = if outcome.passed() { "pass" } else { "FAIL" };
        let _ = writeln!(
            out,
            "{} ({verdict}, {:.1} s): {}",
            outcome.name,
            outcome.took.as_secs_f64(),
            outcome.fault
        );
        for (mark, lines) in [
            ("failed", &outcome.failures),
            ("finding", &outcome.findings),
            ("note", &outcome.notes),
        ] {
            for text in lines {
                let _ = writeln!(out, "  {mark}: {text}");
            }
        }
    }
    out
}

/// The closing line CI reads: `faults: N passed, N failed`.
pub(crate) fn summary(outcomes: &[Outcome]) -> String {
    let passed = outcomes.iter().filter(|outcome| outcome.passed()).count();
    format!(
        "faults: {passed} passed, {} failed",
        outcomes.len() - passed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(lost: Option<u64>, failures: Vec<String>) -> Outcome {
        Outcome {
            name: "x",
            fault: "broker hung",
            load: "10 writes".to_owned(),
            lost,
            failures,
            ..Outcome::default()
        }
    }

    #[test]
    fn the_table_aligns_its_columns_and_marks_failures() {
        let table = table(&[
            outcome(Some(0), vec![]),
            outcome(None, vec!["lost one".to_owned()]),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines
                .iter()
                .all(|line| line.chars().count() == lines[0].chars().count())
        );
        assert!(lines[2].contains("| 0 ") && lines[2].ends_with("| pass   |"));
        assert!(lines[3].contains("| -    |") && lines[3].ends_with("| FAIL   |"));
    }

    #[test]
    fn the_summary_counts_passes_and_failures() {
        let outcomes = [
            outcome(Some(0), vec![]),
            outcome(None, vec!["x".to_owned()]),
        ];
        assert_eq!(summary(&outcomes), "faults: 1 passed, 1 failed");
    }
}
