//! The one table `make bench` prints: each figure beside its baseline, with the goal.

#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub(crate) baseline: Option<(String, f64)>,
    pub(crate) goal: String,
}

impl Row {
    pub(crate) fn new(figure: impl Into<String>, goal: impl Into<String>) -> Self {
        Self {
            figure: figure.into(),
            rate: None,
            p50_ms: None,
            p99_ms: None,
            baseline: None,
            goal: goal.into(),
        }
    }

    pub(crate) fn rate(mut self, rate: f64) -> Self {
        self.rate = Some(rate);
        self
    }

    /// The rate and the p50 and p99 latencies of a load run.
    pub(crate) fn measured(self, load: &crate::load::Load) -> Self {
        self.rate(load.rate())
            .latency(load.percentile_ms(0.5), load.percentile_ms(0.99))
    }

    pub(crate) fn latency(mut self, p50_ms: f64, p99_ms: f64) -> Self {
        self.p50_ms = Some(p50_ms);
        self.p99_ms = Some(p99_ms);
        self
    }

    pub(crate) fn against(mut self, baseline: impl Into<String>, rate: f64) -> Self {
        self.baseline = Some((baseline.into(), rate));
        self
    }

    pub(crate) fn ratio(&self) -> Option<f64> {
        Some(self.rate? / self.baseline.as_ref()?.1)
    }

    /// Whether the goal is met, for the goals a row can judge by itself: a ratio (`≥ 0.9×`)
    /// or a bound on the rate column (`≤ 512`).
    pub(crate) fn met(&self) -> Option<bool> {
        if let Some(ratio) = self
            .goal
            .strip_prefix("≥ ")
            .and_then(|g| g.strip_suffix('×'))
        {
            return Some(self.ratio()? >= ratio.parse().ok()?);
        }
        let bound: f64 = self.goal.strip_prefix("≤ ")?.parse().ok()?;
        Some(self.rate? <= bound)
    }
}

pub(crate) fn print(rows: &[Row]) {
    let cell = |value: Option<f64>, precision: usize| {
        value.map_or_else(|| "—".to_owned(), |v| format!("{v:.precision$}"))
    };
    println!(
        "\n| figure | rate/s | p50 ms | p99 ms | baseline | baseline/s | ratio | goal | met |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let (baseline, baseline_rate) = match &row.baseline {
            Some((name, rate)) => (name.as_str(), cell(Some(*rate), 0)),
            None => ("—", "—".to_owned()),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.figure,
            cell(row.rate, 0),
            cell(row.p50_ms, 2),
            cell(row.p99_ms, 2),
            baseline,
            baseline_rate,
            row.ratio()
                .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×")),
            row.goal,
            match row.met() {
                Some(true) => "yes",
                Some(false) => "no",
                None => "—",
            },
        );
    }
}
