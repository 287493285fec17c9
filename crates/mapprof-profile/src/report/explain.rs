//! Explaining: a finding's statements and advice, in the program's language, each with its
//! figures and the samples it rests on.

use std::collections::BTreeMap;

use super::charge::Charged;
use super::{above_noise_floor, stated, Finding, Language, STATED_SHARE};
use crate::limits::group as group_digits;
use crate::top::format_value;

/// Writes the statements and advice of `f`, in the words of `language`.
pub(super) fn explain(
    f: &mut Finding,
    charged: &BTreeMap<&'static str, Charged>,
    language: Language,
) {
    let bytes = |v: i64| format_value(v, "bytes");
    let pct = |share: f64| format!("{:.1}%", share * 100.0);
    let count = |x: f64| group_digits(x.round() as u64);
    let go = language == Language::Go;
    let mut rebuilt = false;
    for g in &f.growth {
        let entries = match (g.capacity, g.element_bytes) {
            (Some(c), None) => format!(", a table for up to {} entries", group_digits(c)),
            (Some(c), Some(e)) => format!(", {} elements of {e} B", group_digits(c)),
            _ => String::new(),
        };
        match (g.calls, g.per_call, g.final_bytes, &g.counted_at) {
            (Some(calls), Some(per_call), Some(final_bytes), Some(at)) => {
                let ends = if final_bytes == g.largest_bytes {
                    bytes(final_bytes)
                } else {
                    format!(
                        "{} on average, the largest {}",
                        bytes(final_bytes),
                        bytes(g.largest_bytes)
                    )
                };
                f.statements.push(format!(
                "grows a {} about {per_call:.0} times per call ({} resizes in {} calls, counted \
                 {at}), to {ends}{entries}: {} in growth allocations, {} of all growth {}",
                g.container,
                count(g.resizes),
                count(calls),
                bytes(g.bytes),
                pct(g.share),
                stacks(g.samples)
            ))
            }
            _ => f.statements.push(format!(
                "grows a {} {} times ({} in growth allocations, {} of all growth) {}; how many \
                 times per call cannot be told: {}",
                g.container,
                count(g.resizes),
                bytes(g.bytes),
                pct(g.share),
                stacks(g.samples),
                g.unknown_calls.as_deref().unwrap_or("no first growth step")
            )),
        }
        // What the function allocates besides this growth, for each container grown here.
        let besides = |a: &super::Cost| (a.events - g.resizes, a.value - g.bytes);
        let objects_per_container = match (&f.allocation, g.calls) {
            (Some(a), Some(calls)) if calls > 0.0 => besides(a).0 / calls,
            _ => 0.0,
        };
        let rebuild = g.per_call.is_some_and(|p| p >= 4.0)
            && g.element_bytes.is_none()
            && g.capacity
                .is_some_and(|c| objects_per_container >= c as f64 / 4.0);
        if rebuild && !rebuilt {
            rebuilt = true;
            let a = f.allocation.as_ref().expect("checked above");
            let calls = g.calls.expect("checked above");
            f.statements.push(format!(
                "rebuilds the {} on every call: besides its growth it allocates about {} \
                 objects ({}) for each {} it grows, as many as one holds, so every entry is \
                 copied into a new one ({} in all, {} of all allocation) {}",
                g.container,
                count(objects_per_container),
                bytes((besides(a).1 as f64 / calls) as i64),
                g.container,
                bytes(a.value),
                pct(a.share),
                stacks(a.samples)
            ));
            f.advice.push(format!(
                "update the {} in place instead of rebuilding it: insert into the existing one",
                g.container
            ));
        }
        let constructor = match g.container.as_str() {
            "HashMap" | "HashSet" | "Vec" | "VecDeque" | "String" => {
                format!("`{}::with_capacity(n)`", g.container)
            }
            _ => "a capacity up front (`reserve(n)`)".to_owned(),
        };
        if g.per_call.is_none_or(|p| p >= 2.0) {
            let upto = g
                .capacity
                .map(|c| format!(" (at most {})", group_digits(c)))
                .unwrap_or_default();
            f.advice.push(format!(
                "create the {} with {constructor} for the n entries it ends with{upto}, or keep \
                 one and reuse it",
                g.container
            ));
        }
    }
    if !rebuilt {
        if let Some(a) = &f.allocation {
            let largest = a.share.max(a.events_share);
            if largest >= STATED_SHARE && above_noise_floor(largest, a.error) {
                let each = if a.events > 0.0 {
                    bytes((a.value as f64 / a.events).round() as i64)
                } else {
                    "?".to_owned()
                };
                // Churn: many small objects, a larger share of the count than of the bytes.
                let small = a.events > 0.0 && a.value as f64 / a.events < 1024.0;
                let churn = small && a.events_share >= STATED_SHARE && a.events_share > a.share;
                f.statements.push(if churn {
                    format!(
                        "allocates {} objects of ~{each} each ({} of all allocated objects, {} \
                         in all, {} of the bytes): many small allocations {}",
                        count(a.events),
                        pct(a.events_share),
                        bytes(a.value),
                        pct(a.share),
                        stacks(a.samples)
                    )
                } else {
                    format!(
                        "allocates {} ({} of all allocated bytes) in {} objects of ~{each} \
                         each ({} of all allocated objects) {}",
                        bytes(a.value),
                        pct(a.share),
                        count(a.events),
                        pct(a.events_share),
                        stacks(a.samples)
                    )
                });
                if churn {
                    f.advice.push(if go {
                        "make fewer small allocations: reuse a buffer (`buf = buf[:0]`) or a \
                         `sync.Pool`, or keep slices of the input instead of a copy per item"
                            .to_owned()
                    } else {
                        "make fewer small allocations: reuse a buffer (`clear()` it between \
                         items), or borrow (`&str` slices of the input) instead of an owned \
                         copy per item"
                            .to_owned()
                    });
                }
            }
        }
    }
    if let Some(h) = &f.lock_holding {
        if stated(h) {
            let per = if h.events > 0.0 {
                format!(
                    ", {} per contention",
                    format_value((h.value as f64 / h.events) as i64, &h.unit)
                )
            } else {
                String::new()
            };
            let allocates = f.allocation.as_ref().is_some_and(stated);
            let work = match f.growth.first() {
                Some(g) => format!(" while it allocates and grows a {}", g.container),
                None if allocates => " while it allocates".to_owned(),
                None => String::new(),
            };
            f.statements.push(format!(
                "holds a lock others wait for{work}: it made them wait {} ({} of all lock \
                 delay{per}) {}",
                format_value(h.value, &h.unit),
                pct(h.share),
                stacks(h.samples)
            ));
            let shared = if go {
                "a `sync.RWMutex` (readers take `RLock`) or shards"
            } else {
                "an `RwLock` or shards"
            };
            f.advice.push(if work.is_empty() {
                format!(
                    "hold the lock for less time, or use {shared} so that readers do not wait \
                     for each other"
                )
            } else {
                format!(
                    "move the allocation out of the critical section (build outside the lock, \
                     swap under it), or use {shared} so that readers do not wait for writers"
                )
            });
        }
    }
    if let Some(w) = &f.lock_waiting {
        if stated(w) {
            let holder = charged
                .get("lock_holding")
                .and_then(|c| c.by_function.iter().max_by_key(|(_, a)| a.value))
                .map(|(name, _)| format!("; the top lock holder is {name}"))
                .unwrap_or_default();
            f.statements.push(format!(
                "waits for locks: {} ({} of all waiting){holder} {}",
                format_value(w.value, &w.unit),
                pct(w.share),
                stacks(w.samples)
            ));
        }
    }
    if let Some(w) = &f.channel_waiting {
        if stated(w) {
            f.statements.push(format!(
                "waits on channels or in `select`, not for a lock: {} ({} of all waiting) {}",
                format_value(w.value, &w.unit),
                pct(w.share),
                stacks(w.samples)
            ));
        }
    }
    if let Some(c) = &f.cpu {
        if stated(c) {
            f.statements.push(format!(
                "runs on the CPU for {} ({} of all CPU time) {}",
                format_value(c.value, &c.unit),
                pct(c.share),
                stacks(c.samples)
            ));
        }
    }
    if let Some(m) = &f.map_growth_cpu {
        let of_own = f
            .cpu
            .as_ref()
            .filter(|c| c.value > 0)
            .map_or(0.0, |c| m.value as f64 / c.value as f64);
        if above_noise_floor(m.share, m.error) && of_own >= STATED_SHARE {
            let machinery = if go {
                "the runtime's map growth (`hashGrow`, `growWork`, `evacuate`; swiss maps' \
                 `(*table).grow`, `rehash`)"
            } else {
                "hashbrown's rehash (`reserve_rehash`)"
            };
            f.statements.push(format!(
                "grows maps as it inserts: {} of CPU time in {machinery}, {} of its own CPU \
                 time and {} of all {}",
                format_value(m.value, &m.unit),
                pct(of_own),
                pct(m.share),
                stacks(m.samples)
            ));
            // The heap's growth finding may have said it already.
            if go {
                f.advice.push(
                    "create the map with `make(map[K]V, n)` for the n entries it ends with, or \
                     keep one and reuse it"
                        .to_owned(),
                );
            } else if !f.advice.iter().any(|a| a.contains("with_capacity")) {
                f.advice.push(
                    "create the map with `HashMap::with_capacity(n)` for the n entries it ends \
                     with, or keep one and reuse it"
                        .to_owned(),
                );
            }
        }
    }
}

/// `[1 sample]`, `[12 samples]`: how many profile samples (stacks) a statement rests on.
pub(super) fn stacks(n: usize) -> String {
    if n == 1 {
        "[1 sample]".to_owned()
    } else {
        format!("[{n} samples]")
    }
}
