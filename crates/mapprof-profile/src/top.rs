//! The `go tool pprof -top` table: which functions a profile's value is spent in.
//!
//! [`top`] computes the rows (so tests can assert on numbers), [`Top::render`] prints them the
//! way pprof does: the same columns, the same node dropping (`-nodefraction`), the same choice of
//! one output unit for the whole table and the same number formatting, so the two can be
//! compared line by line (`tests/go_profiles.rs` does).

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use crate::view::ProfileView;

/// Options for [`top`]. Every default matches `go tool pprof -top`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopOptions {
    /// Show at most this many rows (pprof's `-nodecount`). Default: `None`, all rows.
    pub max_rows: Option<usize>,
    /// Drop functions whose |cum| is below this fraction of the total (pprof's
    /// `-nodefraction`). Default: 0.005.
    pub node_fraction: f64,
    /// One row per function and source line instead of per function (pprof's `-lines`).
    /// Default: false.
    pub lines: bool,
    /// Sort by cumulative value instead of flat (pprof's `-cum`). Default: false.
    pub cum: bool,
}

impl Default for TopOptions {
    fn default() -> Self {
        Self {
            max_rows: None,
            node_fraction: 0.005,
            lines: false,
            cum: false,
        }
    }
}

/// Whether a row's function was inlined into its callers (pprof's "(inline)" marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inlining {
    /// Never inlined (or it is only ever the root of a stack).
    No,
    /// Inlined into every caller.
    Always,
    /// Inlined into some callers and called into others.
    Partial,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopRow {
    /// The function, and with [`TopOptions::lines`] its `file:line`.
    pub name: String,
    /// Value of the samples in which this function is the leaf frame.
    pub flat: i64,
    /// Value of the samples in which this function appears anywhere (once per sample).
    pub cum: i64,
    /// Whether the function was inlined into its callers.
    pub inlining: Inlining,
}

/// A computed top table.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    /// The sample type the values are of, e.g. `alloc_space`.
    pub sample_type: String,
    /// The unit of the values, e.g. `bytes`.
    pub unit: String,
    /// The sum of |value| over all samples.
    pub total: i64,
    /// The rows, by flat value descending (cum with [`TopOptions::cum`]), then name.
    pub rows: Vec<TopRow>,
    /// How many functions were dropped for a cum below [`Top::node_cutoff`].
    pub dropped: usize,
    /// The cum below which a function was dropped.
    pub node_cutoff: i64,
    /// How many rows there were before [`TopOptions::max_rows`] cut the table.
    pub rows_before_limit: usize,
}

/// Computes the top table of `view` for the values at `sample_index`.
pub fn top(view: &ProfileView<'_>, sample_index: usize, opts: &TopOptions) -> Top {
    struct Node {
        flat: i64,
        cum: i64,
        inlined_in: bool,
        called_in: bool,
    }
    let mut index: HashMap<(&str, &str, i64), usize> = HashMap::new();
    let mut names: Vec<(&str, &str, i64)> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut seen = HashSet::new();
    let mut total = 0i64;
    for sample in view.samples() {
        let value = sample.value(sample_index);
        total = total.saturating_add(value.saturating_abs());
        if value == 0 {
            continue;
        }
        seen.clear();
        let mut frames = sample.frames().peekable();
        let mut leaf = true;
        while let Some(frame) = frames.next() {
            let key = if opts.lines {
                (frame.function.as_ref(), frame.file, frame.line)
            } else {
                (frame.function.as_ref(), "", 0)
            };
            let i = *index.entry(key).or_insert_with(|| {
                names.push(key);
                nodes.push(Node {
                    flat: 0,
                    cum: 0,
                    inlined_in: false,
                    called_in: false,
                });
                nodes.len() - 1
            });
            let node = &mut nodes[i];
            if leaf {
                node.flat = node.flat.saturating_add(value);
                leaf = false;
            }
            // Cum counts a function once per sample, however often it recurses.
            if seen.insert(i) {
                node.cum = node.cum.saturating_add(value);
            }
            if frames.peek().is_some() {
                if frame.inlined {
                    node.inlined_in = true;
                } else {
                    node.called_in = true;
                }
            }
        }
    }

    let node_cutoff = (total as f64 * opts.node_fraction).abs() as i64;
    let mut rows: Vec<TopRow> = names
        .into_iter()
        .zip(nodes)
        // pprof keeps a node whose |cum| equals the cutoff (makeNodeSet drops `< cutoff`).
        .filter(|(_, n)| n.cum.saturating_abs() >= node_cutoff)
        .map(|((function, file, line), n)| TopRow {
            name: match (opts.lines, line) {
                (false, _) => function.to_owned(),
                (true, 0) if file.is_empty() => function.to_owned(),
                (true, 0) => format!("{function} {file}"),
                (true, _) => format!("{function} {file}:{line}"),
            },
            flat: n.flat,
            cum: n.cum,
            inlining: match (n.inlined_in, n.called_in) {
                (true, false) => Inlining::Always,
                (true, true) => Inlining::Partial,
                (false, _) => Inlining::No,
            },
        })
        .collect();
    let dropped = index.len() - rows.len();
    // pprof's orders: flat (FlatNameOrder), or with -cum cum (CumNameOrder), then the name.
    type Value = fn(&TopRow) -> i64;
    let (first, second): (Value, Value) = if opts.cum {
        (|r| r.cum, |r| r.flat)
    } else {
        (|r| r.flat, |r| r.cum)
    };
    rows.sort_by(|a, b| {
        first(b)
            .saturating_abs()
            .cmp(&first(a).saturating_abs())
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| second(b).saturating_abs().cmp(&second(a).saturating_abs()))
    });
    let rows_before_limit = rows.len();
    if let Some(max) = opts.max_rows {
        rows.truncate(max);
    }
    let (sample_type, unit) = view.sample_type_owned(sample_index);
    Top {
        sample_type,
        unit,
        total,
        rows,
        dropped,
        node_cutoff,
        rows_before_limit,
    }
}

impl Top {
    /// The sum of the flat values of the rows shown.
    pub fn shown_flat(&self) -> i64 {
        self.rows
            .iter()
            .fold(0, |acc, r| acc.saturating_add(r.flat))
    }

    /// Writes the table as `go tool pprof -top` does, after a `Type:` line.
    pub fn render(&self, out: &mut impl Write) -> io::Result<()> {
        let unit = self.output_unit();
        let fmt = |v: i64| scaled_label(v, &self.unit, unit);
        writeln!(out, "Type: {}", self.sample_type)?;
        writeln!(
            out,
            "Showing nodes accounting for {}, {} of {} total",
            fmt(self.shown_flat()),
            percentage(self.shown_flat(), self.total).trim(),
            fmt(self.total)
        )?;
        if self.dropped > 0 {
            writeln!(
                out,
                "Dropped {} nodes (cum <= {})",
                self.dropped,
                fmt(self.node_cutoff)
            )?;
        }
        if self.rows.len() < self.rows_before_limit {
            writeln!(
                out,
                "Showing top {} nodes out of {}",
                self.rows.len(),
                self.rows_before_limit
            )?;
        }
        writeln!(
            out,
            "{:>10} {:>5}% {:>5}% {:>10} {:>5}%",
            "flat", "flat", "sum", "cum", "cum"
        )?;
        let mut sum = 0i64;
        for row in &self.rows {
            sum = sum.saturating_add(row.flat);
            let inline = match row.inlining {
                Inlining::No => "",
                Inlining::Always => " (inline)",
                Inlining::Partial => " (partial-inline)",
            };
            writeln!(
                out,
                "{:>10} {} {} {:>10} {}  {}{}",
                fmt(row.flat),
                percentage(row.flat, self.total),
                percentage(sum, self.total),
                fmt(row.cum),
                percentage(row.cum, self.total),
                row.name,
                inline
            )?;
        }
        Ok(())
    }

    /// One unit for the whole table, chosen as pprof's `selectOutputUnit` does: the unit of the
    /// smallest non-zero value shown, unless that is 100 times smaller than the total and in a
    /// different unit, in which case the unit that shows it as at least 0.01.
    fn output_unit(&self) -> Option<&'static str> {
        let mut min = self
            .rows
            .iter()
            .map(|r| {
                if r.flat != 0 {
                    r.flat.saturating_abs()
                } else {
                    r.cum.saturating_abs()
                }
            })
            .filter(|&v| v > 0)
            .min()
            .unwrap_or(0);
        let max = self.total;
        if min == 0 {
            min = max;
        }
        let (_, min_unit) = scale(min, &self.unit, None);
        let (_, max_unit) = scale(max, &self.unit, None);
        if min_unit != max_unit && min.saturating_mul(100) < max {
            scale(min.saturating_mul(100), &self.unit, None).1
        } else {
            min_unit
        }
    }
}

/// Formats `value` of `unit` scaled to a readable unit, as pprof labels values: `1.50MB`,
/// `512kB`, `100B`, `3.20ms`, `1.50s`; counts and unknown units plainly (`1234`).
pub fn format_value(value: i64, unit: &str) -> String {
    scaled_label(value, unit, scale(value, unit, None).1)
}

/// pprof's memory and time unit tables: canonical name, aliases, factor to the base unit.
type UnitTable = &'static [(&'static str, &'static [&'static str], f64)];

const MEMORY: UnitTable = &[
    ("B", &["b", "byte"], 1.0),
    ("kB", &["kb", "kbyte", "kilobyte"], 1024.0),
    ("MB", &["mb", "mbyte", "megabyte"], 1048576.0),
    ("GB", &["gb", "gbyte", "gigabyte"], 1073741824.0),
    ("TB", &["tb", "tbyte", "terabyte"], 1099511627776.0),
    ("PB", &["pb", "pbyte", "petabyte"], 1125899906842624.0),
];
const TIME: UnitTable = &[
    ("ns", &["ns", "nanosecond"], 1.0),
    ("us", &["μs", "us", "microsecond"], 1e3),
    ("ms", &["ms", "millisecond"], 1e6),
    ("s", &["s", "sec", "second"], 1e9),
    ("hrs", &["hour", "hr"], 3.6e12),
];

/// The table and factor of `unit`, matched as pprof's `sniffUnit` does (case-insensitive, a
/// plural `s` dropped from names longer than two letters).
fn sniff(unit: &str) -> Option<(UnitTable, f64)> {
    let lower = unit.to_lowercase();
    let unit = if lower.chars().count() > 2 {
        lower.strip_suffix('s').unwrap_or(&lower)
    } else {
        &lower
    };
    [MEMORY, TIME].into_iter().find_map(|table| {
        table
            .iter()
            .find(|(_, aliases, _)| aliases.contains(&unit))
            .map(|&(_, _, factor)| (table, factor))
    })
}

/// Scales `value` of `from` to the canonical unit `to`, or with `None` to the largest unit in
/// which it is at least 1 (pprof's "auto"). Returns the unit chosen: `None` for counts and
/// unknown units, which are not scaled.
fn scale(value: i64, from: &str, to: Option<&'static str>) -> (f64, Option<&'static str>) {
    let Some((table, factor)) = sniff(from) else {
        return (value as f64, None);
    };
    let base = value as f64 * factor;
    let target = match to {
        Some(name) => table.iter().find(|(n, _, _)| *n == name),
        // The tables are in ascending order: the largest unit that keeps the value at least 1.
        None => table.iter().rev().find(|(_, _, f)| base.abs() / f >= 1.0),
    };
    // Below the smallest unit (only 0 for integers), pprof uses the table's default unit.
    let default = if std::ptr::eq(table, TIME) {
        &TIME[3]
    } else {
        &MEMORY[0]
    };
    let (name, _, f) = target.unwrap_or(default);
    (base / f, Some(name))
}

/// pprof's `ScaledLabel`: two decimals, `.00` dropped, and a bare `0` for zero.
fn scaled_label(value: i64, from: &str, to: Option<&'static str>) -> String {
    let (v, unit) = match to {
        // Unknown units are shown plainly; "count" and friends without a suffix.
        None => (value as f64, plain_unit(from)),
        Some(_) => {
            let (v, u) = scale(value, from, to);
            (v, u.unwrap_or(""))
        }
    };
    let text = format!("{v:.2}");
    let text = text.strip_suffix(".00").unwrap_or(&text);
    if text == "0" || text == "-0" {
        "0".to_owned()
    } else {
        format!("{text}{unit}")
    }
}

/// The suffix pprof prints for a unit it cannot scale: none for counts, else the unit itself.
fn plain_unit(unit: &str) -> &str {
    if sniff(unit).is_some() || matches!(unit, "count" | "sample" | "unit" | "") {
        ""
    } else {
        unit
    }
}

/// pprof's `Percentage`: `  100%`, `%5.2f%%` from 1%, Go's `%5.2g%%` below.
fn percentage(value: i64, total: i64) -> String {
    let ratio = if total == 0 {
        0.0
    } else {
        (value as f64 / total as f64).abs() * 100.0
    };
    if (99.95..=100.05).contains(&ratio) {
        "  100%".to_owned()
    } else if ratio >= 1.0 {
        format!("{ratio:5.2}%")
    } else {
        format!("{:>5}%", go_g2(ratio))
    }
}

/// Go's `%.2g` for a finite non-negative number below 1: two significant digits, trailing zeros
/// dropped, exponent form below 1e-4.
fn go_g2(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:.1e}` rounds to two significant digits and tells the decimal exponent.
    let sci = format!("{x:.1e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..2).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = usize::try_from(1 - exp).unwrap_or(0);
        trim(&format!("{x:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ProfileBuilder;

    #[test]
    fn cum_sorts_by_the_cumulative_value_of_each_function() {
        let stacks: [(&[&str], i64); 4] = [
            (&["leaf_a", "mid", "main"], 5),
            (&["leaf_b", "mid", "main"], 3),
            (&["leaf_c", "main"], 9),
            (&["mid", "rec", "rec", "main"], 2),
        ];
        let profile = stacks
            .iter()
            .fold(ProfileBuilder::new(&[("samples", "count")]), |b, (s, v)| {
                b.names(s, &[*v])
            })
            .build();
        // Cumulative by hand: a function counts each sample it is in once.
        let mut expected: Vec<(String, i64)> = Vec::new();
        for name in ["leaf_a", "leaf_b", "leaf_c", "mid", "rec", "main"] {
            let cum = stacks
                .iter()
                .filter(|(s, _)| s.contains(&name))
                .map(|(_, v)| v)
                .sum();
            expected.push((name.to_owned(), cum));
        }
        expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let view = ProfileView::new(&profile).unwrap();
        let opts = TopOptions {
            cum: true,
            ..TopOptions::default()
        };
        let rows: Vec<(String, i64)> = top(&view, 0, &opts)
            .rows
            .into_iter()
            .map(|r| (r.name, r.cum))
            .collect();
        assert_eq!(rows, expected);
        assert_eq!(rows[0], ("main".to_owned(), 19));
        // Flat order is another one: leaf_c first.
        let flat = top(&view, 0, &TopOptions::default());
        assert_eq!(flat.rows[0].name, "leaf_c");
    }

    #[test]
    fn values_scale_like_pprof() {
        assert_eq!(format_value(100, "bytes"), "100B");
        assert_eq!(format_value(1024, "bytes"), "1kB");
        assert_eq!(format_value(1536 * 1024, "bytes"), "1.50MB");
        assert_eq!(format_value(3 << 30, "bytes"), "3GB");
        assert_eq!(format_value(999, "nanoseconds"), "999ns");
        assert_eq!(format_value(3_200_000, "nanoseconds"), "3.20ms");
        assert_eq!(format_value(1_500_000_000, "nanoseconds"), "1.50s");
        assert_eq!(format_value(1234, "count"), "1234");
        assert_eq!(format_value(0, "bytes"), "0");
        assert_eq!(format_value(7, "widgets"), "7widgets");
    }

    #[test]
    fn percentages_match_go_formatting() {
        assert_eq!(percentage(1, 1), "  100%");
        assert_eq!(percentage(7950, 10000), "79.50%");
        assert_eq!(percentage(54, 100000), "0.054%");
        assert_eq!(percentage(71, 1000000), "0.0071%");
        assert_eq!(percentage(6, 100000), "0.006%");
        assert_eq!(percentage(0, 100), "    0%");
        assert_eq!(percentage(5, 10000000), "5e-05%");
    }

    #[test]
    fn output_unit_is_chosen_from_the_smallest_row() {
        let top = Top {
            sample_type: "alloc_space".into(),
            unit: "bytes".into(),
            total: 5_373_737,
            rows: vec![
                TopRow {
                    name: "a".into(),
                    flat: 4_272_108,
                    cum: 4_272_108,
                    inlining: Inlining::No,
                },
                TopRow {
                    name: "b".into(),
                    flat: 1_097_728,
                    cum: 1_097_728,
                    inlining: Inlining::No,
                },
            ],
            dropped: 0,
            node_cutoff: 0,
            rows_before_limit: 2,
        };
        assert_eq!(top.output_unit(), Some("MB"));
        let mut out = Vec::new();
        top.render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Showing nodes accounting for 5.12MB, 99.93% of 5.12MB total"),
            "{text}"
        );
        assert!(
            text.contains("    4.07MB 79.50% 79.50%     4.07MB 79.50%  a\n"),
            "{text}"
        );
    }
}
