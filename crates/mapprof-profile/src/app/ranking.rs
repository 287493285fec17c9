//! Ranking application functions: each sample charged to its first application frame, summed
//! per function ([`app_top`]), and the table `mapprof top --app` prints.

use std::collections::HashMap;
use std::io::{self, Write};

use super::AppFilter;
use crate::top::format_value;
use crate::view::ProfileView;

/// One application function of an [`AppTop`] ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRow {
    /// The function's name.
    pub function: String,
    /// The source file of the frame that carried the largest single value for this function
    /// (so a report can say where), empty when unknown.
    pub file: String,
    /// The line of that frame, 0 when unknown.
    pub line: i64,
    /// The values of the samples whose first application frame is this function.
    pub value: i64,
    /// `value` as a fraction of [`AppTop::total`], 0.0 when the total is 0.
    pub share: f64,
    /// How many samples the value rests on.
    pub samples: usize,
}

/// Values charged to application functions: see [`app_top`].
#[derive(Debug, Clone, PartialEq)]
pub struct AppTop {
    /// The sample type the values are of, e.g. `alloc_space`.
    pub sample_type: String,
    /// The unit of the values, e.g. `bytes`.
    pub unit: String,
    /// One row per application function, by value descending, then name.
    pub rows: Vec<AppRow>,
    /// The sum of the positive values of all samples.
    pub total: i64,
    /// The part of `total` in samples without any application frame.
    pub unattributed: i64,
    /// How many samples have a positive value.
    pub samples: usize,
    /// How many of them have no application frame.
    pub unattributed_samples: usize,
}

/// Charges the value at `sample_index` of every sample to the sample's first application frame
/// from the leaf, and sums per function.
///
/// Only positive values count, as in flame graphs (a negative value, as in a diffed profile,
/// has no place to be drawn or charged), so `rows` values plus `unattributed` make `total`.
/// A sample without any application frame (all std, runtime, mapprof; or no stack at all) is
/// *unattributed*. A recursive function is charged once per sample, at its leaf-most frame.
pub fn app_top(view: &ProfileView<'_>, sample_index: usize, filter: &AppFilter) -> AppTop {
    struct Acc<'a> {
        value: i64,
        samples: usize,
        best: i64,
        file: &'a str,
        line: i64,
    }
    let mut is_app: HashMap<(&str, &str), bool> = HashMap::new();
    let mut functions: HashMap<&str, Acc<'_>> = HashMap::new();
    let (mut total, mut unattributed) = (0i64, 0i64);
    let (mut samples, mut unattributed_samples) = (0usize, 0usize);
    for sample in view.samples() {
        let value = sample.value(sample_index);
        if value <= 0 {
            continue;
        }
        total = total.saturating_add(value);
        samples += 1;
        let frame = sample.frames().find(|f| {
            *is_app
                .entry((f.function.as_ref(), f.file))
                .or_insert_with(|| filter.is_application_frame(f))
        });
        let Some(frame) = frame else {
            unattributed = unattributed.saturating_add(value);
            unattributed_samples += 1;
            continue;
        };
        let acc = functions
            .entry(frame.function.as_ref())
            .or_insert_with(|| Acc {
                value: 0,
                samples: 0,
                best: 0,
                file: frame.file,
                line: frame.line,
            });
        acc.value = acc.value.saturating_add(value);
        acc.samples += 1;
        if value > acc.best {
            (acc.best, acc.file, acc.line) = (value, frame.file, frame.line);
        }
    }
    let share = |v: i64| {
        if total == 0 {
            0.0
        } else {
            v as f64 / total as f64
        }
    };
    let mut rows: Vec<AppRow> = functions
        .into_iter()
        .map(|(function, acc)| AppRow {
            function: function.to_owned(),
            file: acc.file.to_owned(),
            line: acc.line,
            value: acc.value,
            share: share(acc.value),
            samples: acc.samples,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.value
            .cmp(&a.value)
            .then_with(|| a.function.cmp(&b.function))
    });
    let (sample_type, unit) = view.sample_type_owned(sample_index);
    AppTop {
        sample_type,
        unit,
        rows,
        total,
        unattributed,
        samples,
        unattributed_samples,
    }
}

impl AppTop {
    /// The top row, if any function was charged.
    pub fn top(&self) -> Option<&AppRow> {
        self.rows.first()
    }

    /// [`AppTop::unattributed`] as a fraction of the total, 0.0 when the total is 0.
    pub fn unattributed_share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.unattributed as f64 / self.total as f64
        }
    }

    /// Writes the ranking as a table: a `Type:` line, the total and the unattributed part,
    /// then one line per function (value, share, samples, function, `file:line`), at most
    /// `max_rows` of them.
    pub fn render(&self, out: &mut impl Write, max_rows: Option<usize>) -> io::Result<()> {
        let fmt = |v: i64| format_value(v, &self.unit);
        writeln!(out, "Type: {}", self.sample_type)?;
        writeln!(
            out,
            "Total {} in {} samples; in no application function: {} ({:.2}%) in {} samples",
            fmt(self.total),
            self.samples,
            fmt(self.unattributed),
            self.unattributed_share() * 100.0,
            self.unattributed_samples
        )?;
        let shown = max_rows.map_or(self.rows.len(), |n| n.min(self.rows.len()));
        if shown < self.rows.len() {
            writeln!(
                out,
                "Showing top {shown} application functions out of {}",
                self.rows.len()
            )?;
        }
        writeln!(
            out,
            "{:>10} {:>7} {:>8}  function  file:line",
            "value", "share", "samples"
        )?;
        for row in &self.rows[..shown] {
            let place = match (row.file.as_str(), row.line) {
                ("", _) => "?".to_owned(),
                (file, 0) => file.to_owned(),
                (file, line) => format!("{file}:{line}"),
            };
            writeln!(
                out,
                "{:>10} {:>6.2}% {:>8}  {}  {}",
                fmt(row.value),
                row.share * 100.0,
                row.samples,
                row.function,
                place
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::first_application_frame;
    use crate::proto::Profile;
    use crate::testing::{at, Loc, ProfileBuilder};

    #[test]
    fn the_charge_moves_from_a_registry_crate_to_its_caller() {
        // finish_grow <- regex_syntax::parse (registry) <- Cache::update <- main
        let charged = |regex_file: &str| {
            let regex = at("regex_syntax::ast::parse::ParserI<P>::parse", regex_file, 5);
            profile_of(&[(&[finish_grow(), regex, update(), main(), lang_start()], 30)])
        };
        let p = charged(
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/regex-syntax-0.8.5/src/ast/parse.rs",
        );
        let v = ProfileView::new(&p).unwrap();
        let top = app_top(&v, 0, &AppFilter::default());
        let names: Vec<_> = top.rows.iter().map(|r| r.function.as_str()).collect();
        assert_eq!(names, ["cache_service::Cache::update"]);
        let sample = v.samples().next().unwrap();
        let frame = first_application_frame(&sample, &AppFilter::default()).unwrap();
        assert_eq!(frame.function, "cache_service::Cache::update");
        // Positive control: without the file, regex_syntax is charged.
        let p = charged("");
        let v = ProfileView::new(&p).unwrap();
        let top = app_top(&v, 0, &AppFilter::default());
        assert_eq!(
            top.top().map(|r| r.function.as_str()),
            Some("regex_syntax::ast::parse::ParserI<P>::parse")
        );
    }

    fn cache(name: &str, line: i64) -> Loc {
        at(name, "src/cache.rs", line)
    }
    fn main() -> Loc {
        cache("cache_service::main", 10)
    }
    fn update() -> Loc {
        cache("cache_service::Cache::update", 21)
    }
    fn finish_grow() -> Loc {
        cache("alloc::raw_vec::finish_grow", 100)
    }
    fn lang_start() -> Loc {
        cache("std::rt::lang_start", 1)
    }
    fn get() -> Loc {
        cache("cache_service::Cache::get", 30)
    }

    /// An `alloc_space` profile of these stacks (leaf first) and values.
    fn profile_of(samples: &[(&[Loc], i64)]) -> Profile {
        samples
            .iter()
            .fold(
                ProfileBuilder::new(&[("alloc_space", "bytes")]),
                |b, (stack, v)| b.sample(stack, &[*v]),
            )
            .build()
    }

    fn profile() -> Profile {
        let update_20 = cache("cache_service::Cache::update", 20);
        profile_of(&[
            // update <- main, through the allocator: charged to update (at line 21).
            (&[finish_grow(), update(), main(), lang_start()], 30),
            // update directly (line 20), more samples but less value each.
            (&[update_20.clone(), main(), lang_start()], 10),
            (&[update_20, main(), lang_start()], 15),
            // get <- main, with its allocation.
            (&[finish_grow(), get(), main(), lang_start()], 40),
            // Only library frames: unattributed.
            (&[finish_grow(), lang_start()], 5),
            // No stack: unattributed.
            (&[], 7),
            // Ignored: zero and negative.
            (&[get(), main(), lang_start()], 0),
            (&[get(), main(), lang_start()], -100),
        ])
    }

    #[test]
    fn samples_are_charged_to_their_first_application_frame() {
        let p = profile();
        let v = ProfileView::new(&p).unwrap();
        let top = app_top(&v, 0, &AppFilter::default());
        assert_eq!((top.total, top.unattributed), (107, 12));
        assert_eq!((top.samples, top.unattributed_samples), (6, 2));
        assert_eq!(
            (top.sample_type.as_str(), top.unit.as_str()),
            ("alloc_space", "bytes")
        );
        let rows: Vec<_> = top
            .rows
            .iter()
            .map(|r| {
                (
                    r.function.as_str(),
                    r.file.as_str(),
                    r.line,
                    r.value,
                    r.samples,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("cache_service::Cache::update", "src/cache.rs", 21, 55, 3),
                ("cache_service::Cache::get", "src/cache.rs", 30, 40, 1),
            ]
        );
        assert!((top.rows[0].share - 55.0 / 107.0).abs() < 1e-12);
        assert!((top.rows[1].share - 40.0 / 107.0).abs() < 1e-12);
        assert!((top.unattributed_share() - 12.0 / 107.0).abs() < 1e-12);
        assert_eq!(
            top.top().map(|r| r.function.as_str()),
            Some("cache_service::Cache::update")
        );
    }

    #[test]
    fn added_libraries_move_the_charge_to_the_caller() {
        let p = profile();
        let v = ProfileView::new(&p).unwrap();
        let filter = AppFilter::default().with_library("cache_service");
        let top = app_top(&v, 0, &filter);
        assert!(top.rows.is_empty());
        assert_eq!(top.unattributed, top.total);
    }

    #[test]
    fn ties_are_ordered_by_name_and_an_empty_profile_has_zero_shares() {
        let update_20 = cache("cache_service::Cache::update", 20);
        let p = profile_of(&[(&[get(), main()], 10), (&[update_20, main()], 10)]);
        let v = ProfileView::new(&p).unwrap();
        let top = app_top(&v, 0, &AppFilter::default());
        let names: Vec<_> = top.rows.iter().map(|r| r.function.as_str()).collect();
        assert_eq!(
            names,
            ["cache_service::Cache::get", "cache_service::Cache::update"]
        );

        let p = profile_of(&[]);
        let v = ProfileView::new(&p).unwrap();
        let top = app_top(&v, 0, &AppFilter::default());
        assert_eq!((top.total, top.unattributed, top.samples), (0, 0, 0));
        assert_eq!(top.unattributed_share(), 0.0);
        assert!(top.rows.is_empty());
    }

    #[test]
    fn render_shows_totals_rows_and_the_cut() {
        let p = profile();
        let v = ProfileView::new(&p).unwrap();
        let mut out = Vec::new();
        app_top(&v, 0, &AppFilter::default())
            .render(&mut out, Some(1))
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "Type: alloc_space",
                "Total 107B in 6 samples; in no application function: 12B (11.21%) in 2 samples",
                "Showing top 1 application functions out of 2",
                "     value   share  samples  function  file:line",
                "       55B  51.40%        3  cache_service::Cache::update  src/cache.rs:21",
            ]
        );
    }
}
