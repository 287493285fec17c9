//! Keeping or dropping samples by the functions on their stacks, as `go tool pprof`'s `-focus`
//! and `-ignore` do: a regular expression, unanchored, matched against each function name of
//! a stack (inlined frames included). `focus` keeps the samples with a matching frame, `ignore`
//! drops them; both given, a sample must pass both.

use std::collections::HashSet;

use regex::Regex;

use crate::proto::Profile;

/// The expressions samples are kept and dropped by.
#[derive(Clone, Debug, Default)]
pub struct FrameFilter {
    focus: Option<Regex>,
    ignore: Option<Regex>,
}

impl FrameFilter {
    /// From the expressions given, e.g. `Cache::update` or `^std::`.
    pub fn new(focus: Option<&str>, ignore: Option<&str>) -> Result<FrameFilter, regex::Error> {
        Ok(FrameFilter {
            focus: focus.map(Regex::new).transpose()?,
            ignore: ignore.map(Regex::new).transpose()?,
        })
    }

    /// Removes from `profile` (decoded, so valid) the samples it does not keep.
    pub fn apply(&self, profile: &mut Profile) {
        if self.focus.is_none() && self.ignore.is_none() {
            return;
        }
        let matching = |rx: &Option<Regex>| -> Option<HashSet<u64>> {
            let rx = rx.as_ref()?;
            let functions: HashSet<u64> = profile
                .function
                .iter()
                .filter(|f| rx.is_match(&profile.string_table[f.name as usize]))
                .map(|f| f.id)
                .collect();
            Some(
                profile
                    .location
                    .iter()
                    .filter(|l| l.line.iter().any(|l| functions.contains(&l.function_id)))
                    .map(|l| l.id)
                    .collect(),
            )
        };
        let (focus, ignore) = (matching(&self.focus), matching(&self.ignore));
        let through =
            |ids: &[u64], locations: &HashSet<u64>| ids.iter().any(|id| locations.contains(id));
        profile.sample.retain(|s| {
            focus.as_ref().is_none_or(|f| through(&s.location_id, f))
                && !ignore.as_ref().is_some_and(|i| through(&s.location_id, i))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ProfileBuilder;

    fn profile() -> Profile {
        ProfileBuilder::new(&[("samples", "count")])
            .names(&["alloc", "cache::Cache::update", "main"], &[1])
            .names(&["read", "cache::Cache::get", "main"], &[2])
            .names(&["std::thread::sleep", "main"], &[4])
            .build()
    }

    fn kept(focus: Option<&str>, ignore: Option<&str>) -> Vec<i64> {
        let mut p = profile();
        FrameFilter::new(focus, ignore).unwrap().apply(&mut p);
        p.sample.iter().map(|s| s.value[0]).collect()
    }

    #[test]
    fn focus_keeps_and_ignore_drops_samples_through_a_matching_frame() {
        assert_eq!(kept(None, None), [1, 2, 4]);
        assert_eq!(kept(Some("Cache::"), None), [1, 2]);
        assert_eq!(
            kept(Some("main"), None),
            [1, 2, 4],
            "any frame, not only the leaf"
        );
        assert_eq!(kept(None, Some("update|sleep")), [2]);
        assert_eq!(kept(Some("Cache"), Some("^read$")), [1]);
        assert_eq!(
            kept(Some("^cache$"), None),
            Vec::<i64>::new(),
            "anchors hold"
        );
    }

    #[test]
    fn a_bad_expression_is_an_error() {
        assert!(FrameFilter::new(Some("("), None).is_err());
    }
}
