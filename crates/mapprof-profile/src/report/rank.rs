//! Ranking: each function's cost per profile, its score (its largest share of any profile,
//! weighed by the evidence), and the findings over the threshold, most costly first.

use std::collections::BTreeMap;

use super::charge::{Charged, GrowthSites};
use super::explain::explain;
use super::sites::growth_of;
use super::{Cost, Finding, Language, ReportOptions, MIN_EVIDENCE};

/// How fully the shares of the profile in `role` count: 1 from [`MIN_EVIDENCE`] events on.
pub(super) fn evidence(charged: &BTreeMap<&'static str, Charged>, role: &str) -> f64 {
    let events = charged.get(role).map_or(0.0, |c| c.events);
    (events / MIN_EVIDENCE).min(1.0)
}

/// The relative standard error of a value of `variance`: 0 for an exact one (or none).
pub(super) fn relative_error(variance: f64, value: i64) -> f64 {
    if value > 0 {
        variance.sqrt() / value as f64
    } else {
        0.0
    }
}

pub(super) fn cost(
    charged: &BTreeMap<&'static str, Charged>,
    role: &str,
    function: &str,
) -> Option<Cost> {
    let c = charged.get(role)?;
    let acc = c.by_function.get(function)?;
    let ratio = |part: f64, whole: f64| if whole > 0.0 { part / whole } else { 0.0 };
    Some(Cost {
        value: acc.value,
        unit: c.unit.clone(),
        share: ratio(acc.value as f64, c.total as f64),
        events: acc.events,
        events_share: ratio(acc.events, c.events),
        error: relative_error(acc.variance, acc.value),
        samples: acc.samples,
    })
}

pub(super) fn findings(
    charged: &BTreeMap<&'static str, Charged>,
    sites: &GrowthSites,
    language: Language,
    opts: &ReportOptions,
) -> Vec<Finding> {
    let growth_total = charged.get("growth").map_or(0, |c| c.total);
    // name -> (file, line, rank of that position: known line, not a lock release, allocating,
    // weight)
    type Position = (String, i64, (bool, bool, bool, i64));
    let mut functions: BTreeMap<&str, Position> = BTreeMap::new();
    for (&role, c) in charged {
        for (name, acc) in &c.by_function {
            let e = functions.entry(name.as_str()).or_insert((
                String::new(),
                0,
                (false, false, false, i64::MIN),
            ));
            let Some(place) = acc.place() else {
                continue;
            };
            // The line that allocates most, else the most-weighted line of the profile where
            // the function has its largest share (shares, so that bytes and nanoseconds
            // compare); a known line first, a lock release's last.
            let weight = if c.total > 0 {
                (place.value as f64 / c.total as f64 * 1e9) as i64
            } else {
                0
            };
            let rank = (place.line > 0, !place.release, role == "allocation", weight);
            if rank > e.2 {
                *e = (place.file.to_owned(), place.line, rank);
            }
        }
    }
    let mut out: Vec<Finding> = functions
        .into_iter()
        .map(|(function, (file, line, _))| {
            let growth = growth_of(function, sites, growth_total);
            let allocation = cost(charged, "allocation", function);
            let lock_holding = cost(charged, "lock_holding", function);
            let lock_waiting = cost(charged, "lock_waiting", function);
            let channel_waiting = cost(charged, "channel_waiting", function);
            let cpu = cost(charged, "cpu", function);
            let map_growth_cpu = cost(charged, "map_growth_cpu", function);
            let growth_share: f64 = growth.iter().map(|g| g.share).sum();
            let weighed = |role: &str, cost: &Option<Cost>| {
                cost.as_ref()
                    .map_or(0.0, |c| c.share * evidence(charged, role))
            };
            let objects = allocation
                .as_ref()
                .map_or(0.0, |c| c.events_share * evidence(charged, "allocation"));
            let score = [
                weighed("allocation", &allocation),
                objects,
                growth_share * evidence(charged, "growth"),
                weighed("lock_holding", &lock_holding),
                weighed("cpu", &cpu),
                weighed("lock_waiting", &lock_waiting) / 2.0,
                weighed("channel_waiting", &channel_waiting) / 2.0,
            ]
            .into_iter()
            .fold(0.0, f64::max);
            let mut finding = Finding {
                function: function.to_owned(),
                file,
                line,
                score,
                allocation,
                growth,
                lock_holding,
                lock_waiting,
                channel_waiting,
                cpu,
                map_growth_cpu,
                statements: Vec::new(),
                advice: Vec::new(),
            };
            explain(&mut finding, charged, language);
            finding
        })
        .filter(|f| f.score >= opts.min_share && !f.statements.is_empty())
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.function.cmp(&b.function))
    });
    out.truncate(opts.max_findings);
    out
}
