//! Growth sites: from a site's resizes per size class, the containers grown there (calls), the
//! growths per call, the sizes they end at and their capacity (see the report's module
//! documentation, "Growth per call").

use super::charge::{Class, GrowthSites, Site};
use super::rank::relative_error;
use super::{above_noise_floor, Growth, MAX_CALLS_ERROR, MAX_MISSED, SYSTEMATIC};
use crate::limits::group as group_digits;
use crate::top::format_value;

/// The capacity `steps` doublings of `container` reach (see the module documentation), for the
/// containers whose growth rule gives entries without an element size.
pub(super) fn capacity(container: &str, steps: f64) -> Option<u64> {
    let n = steps.round();
    if !(1.0..=40.0).contains(&n) {
        return None;
    }
    let doublings = n as u32 - 1;
    match container {
        "HashMap" | "HashSet" => {
            let buckets = 4u64 << doublings;
            Some(if buckets < 8 {
                buckets - 1
            } else {
                buckets / 8 * 7
            })
        }
        _ => None,
    }
}

/// Whether the allocations of `class` are hashbrown's first table, of 4 buckets: `4 ×
/// size_of::<T>()` rounded up to the control group's width (16 bytes with SSE2, 8 without),
/// then 4 + width control bytes, so 4 more than a multiple of 8; every larger table (8 buckets
/// and more, `buckets × (size_of::<T>() + 1) + width`) is a multiple of 8. Only from that table
/// do the doublings count the capacity: at a large rate the first table may never be sampled,
/// and the smallest class seen is a later one.
fn is_first_table(class: &Class) -> bool {
    matches!(class.sizes, Some((lo, hi)) if lo == hi && lo % 8 == 4)
}

/// The probability that an allocation of `size` bytes is sampled at `rate`.
pub(super) fn sample_probability(size: f64, rate: f64) -> f64 {
    if rate <= 1.0 {
        1.0
    } else {
        -(-size / rate).exp_m1()
    }
}

/// The containers `function` grows, over the noise floor (see the module documentation).
pub(super) fn growth_of(function: &str, sites: &GrowthSites, total: i64) -> Vec<Growth> {
    let mut out: Vec<Growth> = sites
        .range((function.to_owned(), String::new())..)
        .take_while(|((f, _), _)| f == function)
        .map(|((_, container), site)| grown(container, site, total))
        .filter(|g| above_noise_floor(g.share, g.error))
        .collect();
    out.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.container.cmp(&b.container))
    });
    out
}

/// One site's growth: calls from the first growth step, final sizes from where the counts
/// drop (see the module documentation).
pub(super) fn grown(container: &str, site: &Site, total: i64) -> Growth {
    let classes: Vec<(u32, Class)> = site.classes.iter().map(|(&k, &c)| (k, c)).collect();
    let resizes: f64 = classes.iter().map(|(_, c)| c.resizes).sum();
    let bytes = classes
        .iter()
        .fold(0i64, |t, (_, c)| t.saturating_add(c.bytes));
    let samples = classes.iter().map(|(_, c)| c.samples).sum();
    let bytes_variance: f64 = classes.iter().map(|(_, c)| c.variance).sum();
    let average = |c: &Class| {
        if c.resizes > 0.0 {
            c.bytes as f64 / c.resizes
        } else {
            0.0
        }
    };
    // An estimate of n at probability p has variance n(1-p)/p.
    let variance_of = |n: f64, c: &Class| {
        let p = sample_probability(average(c), site.rate);
        n * (1.0 - p) / p
    };
    let variance = |c: &Class| variance_of(c.resizes, c);
    let (first_class, first) = classes[0];
    let (last_class, last) = classes[classes.len() - 1];
    let error = variance(&first).sqrt() / first.resizes.max(f64::MIN_POSITIVE);
    // Tested at the variance the first class would have if it held as many as `c` (all
    // starting alike): from the first class's own count, a low draw of a rarely sampled first
    // step (2 samples of 244 B at 64 KiB for about 6 expected) looked precise, and 538 against
    // 1,728 at 56 kB said the maps did not all start empty.
    let more = classes[1..].iter().find(|(_, c)| {
        c.resizes
            > first.resizes + 0.5 + 3.0 * (variance_of(c.resizes, &first) + variance(c)).sqrt()
    });
    // Every container passing every class once (all end at the same size): the classes'
    // sampled counts pool into one estimate, Σ sampled ÷ Σ p, precise where the first step
    // alone is not (its small allocations are rarely sampled at a large rate).
    let probability = |c: &Class| sample_probability(average(c), site.rate);
    let seen: f64 = classes
        .iter()
        .map(|(_, c)| c.resizes * probability(c))
        .sum();
    let pooled = seen / classes.iter().map(|(_, c)| probability(c)).sum::<f64>();
    // Each class within 4 standard errors of the pooled count: the test is joint over a dozen
    // classes or so, where 3 would call about 3% of sites that do end alike uneven (the
    // fixture's, once in a loaded CI run).
    let same_end = classes.iter().all(|(_, c)| {
        let p = probability(c);
        let slack = 0.5 + SYSTEMATIC * pooled;
        (c.resizes - pooled).abs() <= slack + 4.0 * (pooled * (1.0 - p) / p).sqrt()
    }) && seen.sqrt().recip() <= MAX_CALLS_ERROR;
    let size = |v: f64| format_value(v as i64, "bytes");
    let first_step = format!("its first growth step, {}", size(average(&first)));
    let by_first = first.resizes > 0.0 && error <= MAX_CALLS_ERROR;
    // Whether the smallest class seen is the first step: `n` containers passing a class half
    // its size would have left it unsampled with probability (1-p)^n.
    let count = if same_end { pooled } else { first.resizes };
    let missed = (1.0 - sample_probability(average(&first) / 2.0, site.rate)).powf(count);
    let (calls, counted_at, unknown_calls) = if let Some((_, c)) = more {
        let why = format!(
            "more resizes at {} ({}) than at {first_step} ({}): its containers do not all \
             start from the same size",
            size(average(c)),
            group_digits(c.resizes.round() as u64),
            group_digits(first.resizes.round() as u64)
        );
        (None, None, Some(why))
    } else if !same_end && !by_first {
        let why = format!(
            "{first_step} rests on about {:.0} sampled allocations, too few to count calls, \
             and the calls do not all end at the same size",
            first.resizes * probability(&first)
        );
        (None, None, Some(why))
    } else if missed > MAX_MISSED && !is_first_table(&first) {
        let why = format!(
            "its smallest size class seen, {}, may not be its first growth step: a smaller \
             one would go unsampled {:.0}% of the time",
            size(average(&first)),
            missed * 100.0
        );
        (None, None, Some(why))
    } else if same_end {
        let at = format!(
            "over its {} size classes, {} to {}, which every call passes once: all end at the \
             same size, so the growths per call are the classes",
            last_class - first_class + 1,
            size(average(&first)),
            size(average(&last))
        );
        (Some(pooled), Some(at), None)
    } else {
        let at = format!("at {first_step}, which every call passes once");
        (Some(first.resizes), Some(at), None)
    };
    // All ending alike, each call grows once per class: exact, where the quotient carries the
    // noise of the rarely sampled small classes.
    let per_call = match calls {
        Some(_) if same_end => Some((last_class - first_class + 1) as f64),
        Some(c) => Some(resizes / c),
        None => None,
    };
    // Containers that ended in a class: its count minus the next class's.
    let final_bytes = calls.map(|_| {
        if same_end {
            return average(&last) as i64; // all end in the largest class
        }
        let (mut ended, mut sum) = (0.0, 0.0);
        for (i, (_, c)) in classes.iter().enumerate() {
            let next = classes.get(i + 1).map_or(0.0, |(_, n)| n.resizes);
            let here = (c.resizes - next).max(0.0);
            ended += here;
            sum += here * average(c);
        }
        (sum / ended.max(f64::MIN_POSITIVE)) as i64
    });
    let largest_bytes = average(&last) as i64;
    // The largest containers' growths: one class per doubling from the first step.
    let steps = (last_class - first_class + 1) as f64;
    let capacity = match container {
        "HashMap" | "HashSet" if is_first_table(&first) => capacity(container, steps),
        "Vec" | "VecDeque" | "BinaryHeap" => site.element.map(|e| largest_bytes as u64 / e),
        _ => None,
    };
    Growth {
        container: container.to_owned(),
        resizes,
        bytes,
        share: if total > 0 {
            bytes as f64 / total as f64
        } else {
            0.0
        },
        samples,
        error: relative_error(bytes_variance, bytes),
        first_bytes: average(&first) as i64,
        largest_bytes,
        calls,
        per_call,
        final_bytes,
        element_bytes: site.element,
        capacity,
        counted_at,
        unknown_calls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_follow_the_growth_rules() {
        // hashbrown: 4, 8, 16 ... buckets; 7/8 of them usable from 8 on.
        assert_eq!(capacity("HashMap", 1.0), Some(3));
        assert_eq!(capacity("HashMap", 2.0), Some(7));
        assert_eq!(capacity("HashSet", 16.0), Some(114_688));
        // Entries of a Vec or String need the element size: bytes say nothing of them.
        assert_eq!(capacity("Vec", 19.4), None);
        assert_eq!(capacity("String", 3.0), None);
        assert_eq!(capacity("realloc", 5.0), None);
        assert_eq!(capacity("HashMap", 0.2), None);
    }

    /// A site of (class, resizes, average bytes) at `rate`.
    fn site(rate: f64, classes: &[(f64, f64)]) -> Site {
        let classes = classes
            .iter()
            .map(|&(resizes, size)| {
                let class = 64 - (size as u64).leading_zeros();
                let c = Class {
                    resizes,
                    bytes: (resizes * size) as i64,
                    variance: 0.0,
                    samples: 1,
                    sizes: Some((size as u64, size as u64)),
                };
                (class, c)
            })
            .collect();
        Site {
            classes,
            element: None,
            rate,
        }
    }

    #[test]
    fn calls_are_counted_at_the_first_growth_step_whatever_size_containers_end_at() {
        // 10 vectors pass 32 B..256 B; 6 of them go on to 512 B, 2 to 1 kB.
        let s = site(
            1.0,
            &[
                (10.0, 32.0),
                (10.0, 64.0),
                (10.0, 128.0),
                (10.0, 256.0),
                (6.0, 512.0),
                (2.0, 1024.0),
            ],
        );
        let g = grown("Vec", &s, 1);
        assert_eq!(g.calls, Some(10.0), "{g:?}");
        assert!((g.per_call.unwrap() - 4.8).abs() < 1e-9, "{g:?}");
        // 4 end at 256 B, 4 at 512 B, 2 at 1 kB.
        assert_eq!(g.final_bytes, Some((4 * 256 + 4 * 512 + 2 * 1024) / 10));
        assert_eq!(g.largest_bytes, 1024);
        assert_eq!(g.capacity, None, "no element size, no entries");
        // The old estimate, from the largest class, would have said 24 per call.
    }

    #[test]
    fn calls_that_cannot_be_told_are_said_so() {
        // More containers at a larger class than at the first step: not all start empty.
        let g = grown(
            "Vec",
            &site(1.0, &[(2.0, 32.0), (50.0, 64.0), (50.0, 128.0)]),
            1,
        );
        assert_eq!(g.calls, None);
        assert!(
            g.unknown_calls
                .as_deref()
                .unwrap()
                .contains("do not all start"),
            "{g:?}"
        );
        // At a 512 KiB rate, 100 first steps of 32 B are about 0.006 sampled allocations.
        let g = grown("Vec", &site(524288.0, &[(100.0, 32.0), (90.0, 64.0)]), 1);
        assert_eq!(g.calls, None);
        assert!(
            g.unknown_calls.as_deref().unwrap().contains("too few"),
            "{g:?}"
        );
        // Nor is a low draw of a rarely sampled first step: 1,728 maps through 11 tables at
        // 64 KiB, the 244-byte first one sampled twice (about 6 expected), as a fixture run
        // had it.
        let rate = 65536.0;
        let tables: Vec<(f64, f64)> = (0..11)
            .map(|k| {
                let size = (244u64 << k) as f64;
                let p = sample_probability(size, rate);
                let sampled = if k == 0 { 2.0 } else { (1728.0 * p).round() };
                (sampled / p, size)
            })
            .collect();
        let g = grown("HashMap", &site(rate, &tables), 1);
        assert!(g.calls.is_some(), "{g:?}");
        assert_eq!(g.per_call, Some(11.0), "{g:?}");
        // Sampling noise at a larger class is not taken for a different start.
        let g = grown(
            "Vec",
            &site(65536.0, &[(9000.0, 4096.0), (9400.0, 8192.0)]),
            1,
        );
        let calls = g.calls.expect("within sampling noise of one count");
        assert!((9000.0..=9400.0).contains(&calls), "{g:?}");
    }

    #[test]
    fn calls_that_all_end_alike_are_counted_over_every_class() {
        // 520 rebuilds of a map through 11 tables from 244 B, sampled at 64 KiB: the first
        // step is sampled about twice, the largest table every time.
        let rate = 65536.0;
        let classes: Vec<(f64, f64)> = (0..11)
            .map(|k| {
                let size = (244u64 << k) as f64;
                let p = sample_probability(size, rate);
                (((520.0 * p).round().max(1.0) / p).round(), size)
            })
            .collect();
        let g = grown("HashMap", &site(rate, &classes), 1);
        let calls = g.calls.expect("all end alike");
        assert!((calls - 520.0).abs() < 520.0 * 0.05, "{g:?}");
        assert!((g.per_call.unwrap() - 11.0).abs() < 1.5, "{g:?}");
        assert_eq!(g.final_bytes, Some(244 << 10));
        assert_eq!(g.capacity, Some(3584));
        assert!(g
            .counted_at
            .unwrap()
            .starts_with("over its 11 size classes"));
        // Files of different lengths at the same rate: neither rule holds.
        let mut files: Vec<(f64, f64)> = (0..14).map(|k| (64.0, (32u64 << k) as f64)).collect();
        files.extend([(62.0, 1 << 20), (48.0, 4 << 20)].map(|(n, s)| (n, s as f64)));
        let files: Vec<(f64, f64)> = files
            .into_iter()
            .map(|(n, size)| {
                let p = sample_probability(size, rate);
                (((n * p).round().max(1.0) / p).round(), size)
            })
            .collect();
        let g = grown("Vec", &site(rate, &files), 1);
        assert_eq!(g.calls, None, "{g:?}");
        assert!(g.unknown_calls.unwrap().contains("too few"));
    }
}
