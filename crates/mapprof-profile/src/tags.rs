//! Keeping or dropping samples by their string labels, as `go tool pprof`'s `-tagfocus` and
//! `-tagignore` do: `key=value`, the value matched exactly (pprof's is a regular expression).
//! A sample is kept when it carries one of the focus pairs (any sample, without them) and none
//! of the ignored ones.

use crate::proto::{Label, Profile};
use std::fmt;

/// The pairs to keep and to drop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagFilter {
    focus: Vec<(String, String)>,
    ignore: Vec<(String, String)>,
}

/// A `key=value` that is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagError(String);

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: a tag filter is key=value, e.g. role=load-generator",
            self.0
        )
    }
}

impl std::error::Error for TagError {}

fn pair(text: &str) -> Result<(String, String), TagError> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(TagError(text.to_owned())),
    }
}

impl TagFilter {
    /// From `key=value` texts: samples carrying one of `focus` (all, when empty) and none of
    /// `ignore`.
    pub fn new(focus: &[String], ignore: &[String]) -> Result<TagFilter, TagError> {
        Ok(TagFilter {
            focus: focus.iter().map(|t| pair(t)).collect::<Result<_, _>>()?,
            ignore: ignore.iter().map(|t| pair(t)).collect::<Result<_, _>>()?,
        })
    }

    /// Drops the pairs it ignores.
    pub fn ignoring(key: &str, value: &str) -> TagFilter {
        TagFilter {
            focus: Vec::new(),
            ignore: vec![(key.to_owned(), value.to_owned())],
        }
    }

    /// Whether it keeps every sample.
    pub fn is_empty(&self) -> bool {
        self.focus.is_empty() && self.ignore.is_empty()
    }

    /// Removes from `profile` the samples it does not keep.
    pub fn apply(&self, profile: &mut Profile) {
        if self.is_empty() {
            return;
        }
        let strings = std::mem::take(&mut profile.string_table);
        let text = |i: i64| {
            usize::try_from(i)
                .ok()
                .and_then(|i| strings.get(i))
                .map(String::as_str)
        };
        let carries = |labels: &[Label], pairs: &[(String, String)]| {
            labels.iter().any(|l| {
                pairs
                    .iter()
                    .any(|(k, v)| text(l.key) == Some(k) && l.str != 0 && text(l.str) == Some(v))
            })
        };
        profile.sample.retain(|s| {
            (self.focus.is_empty() || carries(&s.label, &self.focus))
                && !carries(&s.label, &self.ignore)
        });
        profile.string_table = strings;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{str_label, ProfileBuilder};

    #[test]
    fn focus_keeps_and_ignore_drops_by_exact_pairs() {
        let labels = |pairs: &[(&str, &str)]| -> Vec<_> {
            pairs.iter().map(|(k, v)| str_label(k, v)).collect()
        };
        let mut profile = ProfileBuilder::new(&[("samples", "count")])
            .labelled_sample(&[], &[1], &labels(&[("role", "load-generator")]))
            .labelled_sample(
                &[],
                &[1],
                &labels(&[("role", "server"), ("route", "/item")]),
            )
            .labelled_sample(&[], &[1], &labels(&[("route", "/item")]))
            .sample(&[], &[1])
            .build();
        let all = profile.sample.clone();
        let mut ignored = profile.clone();
        TagFilter::ignoring("role", "load-generator").apply(&mut ignored);
        assert_eq!(ignored.sample, all[1..]);
        let focus = TagFilter::new(&["route=/item".into()], &["role=server".into()]).unwrap();
        focus.apply(&mut profile);
        assert_eq!(profile.sample, all[2..3]);
        for bad in ["role", "=x"] {
            let e = TagFilter::new(&[bad.into()], &[]).unwrap_err();
            assert!(e.to_string().contains("key=value"), "{e}");
        }
    }
}
