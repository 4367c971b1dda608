//! The figures table: each metric next to its ceiling from the same run, the ratio between
//! them, the target, and whether the target was met.

use std::fmt::Write;

use crate::cpu::CpuShare;

#[derive(Clone, Copy)]
pub enum Target {
    /// value / ceiling must reach this.
    RatioAtLeast(f64),
    /// value must reach this.
    AtLeast(f64),
    /// value must stay under this.
    Below(f64),
    None,
}

pub struct Row {
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    pub ceiling: Option<f64>,
    pub target: Target,
}

impl Row {
    pub fn new(metric: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self {
            metric: metric.into(),
            value,
            unit,
            ceiling: None,
            target: Target::None,
        }
    }

    pub fn ceiling(mut self, c: f64) -> Self {
        self.ceiling = Some(c);
        self
    }

    pub fn target(mut self, t: Target) -> Self {
        self.target = t;
        self
    }

    fn ratio(&self) -> Option<f64> {
        self.ceiling.filter(|c| *c > 0.0).map(|c| self.value / c)
    }

    fn verdict(&self) -> &'static str {
        let ok = match self.target {
            Target::RatioAtLeast(t) => self.ratio().map(|r| r >= t),
            Target::AtLeast(t) => Some(self.value >= t),
            Target::Below(t) => Some(self.value < t),
            Target::None => None,
        };
        match ok {
            Some(true) => "ok",
            Some(false) => "below",
            None => "-",
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::RatioAtLeast(t) => format!("ratio >= {t}"),
            Target::AtLeast(t) => format!(">= {} {}", num(t), self.unit),
            Target::Below(t) => format!("< {} {}", num(t), self.unit),
            Target::None => "-".into(),
        }
    }
}

/// Numbers with as many decimals as their size deserves.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub fn table(rows: &[Row]) -> String {
    let header = ["metric", "value", "ceiling", "ratio", "target", "verdict"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.metric.clone(),
                format!("{} {}", num(r.value), r.unit),
                r.ceiling
                    .map_or("-".into(), |c| format!("{} {}", num(c), r.unit)),
                r.ratio().map_or("-".into(), |x| format!("{x:.2}")),
                r.target_text(),
                r.verdict().into(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[&str]| {
        let parts: Vec<String> = row
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", parts.join(" | "));
    };
    line(&mut out, &header);
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for row in &cells {
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &refs);
    }
    out
}

/// Cores busy per phase, so a reader sees whether the client, the server or a neighbour
/// was the one using the machine.
pub fn cpu_table(phases: &[(String, CpuShare)]) -> String {
    let width = phases
        .iter()
        .map(|(p, _)| p.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "| {:<width$} | client cores | server cores | irq/softirq | other cores |\n|-{}-|--------------|--------------|-------------|-------------|\n",
        "phase",
        "-".repeat(width)
    );
    for (phase, c) in phases {
        let _ = writeln!(
            out,
            "| {phase:<width$} | {:>12.2} | {:>12.2} | {:>11.2} | {:>11.2} |",
            c.client, c.server, c.irq, c.other
        );
    }
    out
}
