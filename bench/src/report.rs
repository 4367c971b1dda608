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

/// Cores busy per phase, so a reader sees whether the client, which server process, or a
/// neighbour was the one using the machine. One column per watched process group.
pub fn cpu_table(phases: &[(String, CpuShare)]) -> String {
    let mut groups: Vec<&str> = Vec::new();
    for (_, c) in phases {
        for (name, _) in &c.parts {
            if !groups.contains(&name.as_str()) {
                groups.push(name);
            }
        }
    }
    let mut header = vec!["phase".to_owned(), "client cores".to_owned()];
    header.extend(groups.iter().map(|g| format!("{g} cores")));
    header.extend(["irq/softirq".to_owned(), "other cores".to_owned()]);
    let rows: Vec<Vec<String>> = phases
        .iter()
        .map(|(phase, c)| {
            let mut row = vec![phase.clone(), format!("{:.2}", c.client)];
            row.extend(groups.iter().map(|g| format!("{:.2}", c.part(g))));
            row.extend([format!("{:.2}", c.irq), format!("{:.2}", c.other)]);
            row
        })
        .collect();
    let mut width: Vec<usize> = header.iter().map(String::len).collect();
    for row in &rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        let parts: Vec<String> = row
            .iter()
            .zip(&width)
            .enumerate()
            // The phase name left-aligned, the numbers right-aligned.
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", parts.join(" | "));
    };
    line(&mut out, &header);
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for row in &rows {
        line(&mut out, row);
    }
    out
}

/// The CPU table, and a warning when a neighbour took a noticeable share of the machine.
pub fn print_cpu(phases: &[(String, CpuShare)]) {
    println!("{}", cpu_table(phases));
    let (phase, worst) = phases
        .iter()
        .map(|(p, c)| (p.as_str(), c.other))
        .fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    if worst > 0.25 {
        println!(
            "WARNING: other processes kept {worst:.2} cores busy during \"{phase}\"; figures are depressed by contention, rerun on a quiet machine."
        );
    }
}
