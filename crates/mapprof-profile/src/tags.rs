//! Keeping or dropping samples by their string labels, as `go tool pprof`'s `-tagfocus` and
//! `-tagignore` do (`compileTagFilter` in pprof's `internal/driver/driver_focus.go`), rule for
//! rule:
//!
//! - `key=regex,regex...`: a sample matches when it carries the label `key` and one of its
//!   values matches one of the expressions;
//! - a bare `regex,regex...`: a sample matches when *every* expression matches one of its
//!   labels, each label read as `key:value` (so `load-generator` matches `role:load-generator`
//!   and `^role:` any sample with a `role`).
//!
//! Expressions are Go-like regular expressions (the `regex` crate), unanchored: `role=load`
//! matches `load-generator` too, `role=^load$` only `load`. A sample is kept when it matches
//! the focus (any sample, without one) and not the ignore. Numeric labels are not read:
//! pprof's numeric ranges (`bytes=1kb:4kb`, `:64kb`, `32`) are refused with an error rather
//! than matched as text, which pprof would not do.

use crate::proto::{Label, Profile};
use regex::Regex;
use std::fmt;

/// What `-tagfocus` or `-tagignore` says.
#[derive(Clone, Debug)]
enum TagMatch {
    /// `key=rx,rx`: the key's values, any expression.
    Key { key: String, any: Vec<Regex> },
    /// `rx,rx`: every expression matches some `key:value`.
    Bare { all: Vec<Regex> },
}

impl TagMatch {
    fn parse(option: &'static str, text: &str) -> Result<TagMatch, TagError> {
        let error = |reason: String| TagError {
            option,
            text: text.to_owned(),
            reason,
        };
        // pprof: `strings.SplitN(value, "=", 2)`; an empty key stays a key.
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (Some(key), value),
            None => (None, text),
        };
        if is_numeric_range(value) {
            return Err(error(
                "numeric tag ranges (e.g. bytes=1kb:4kb) are not supported; use go tool pprof"
                    .into(),
            ));
        }
        let regexes = value
            .split(',')
            .map(|rx| Regex::new(rx).map_err(|e| error(format!("bad regular expression: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match key {
            Some(key) => TagMatch::Key {
                key: key.to_owned(),
                any: regexes,
            },
            None => TagMatch::Bare { all: regexes },
        })
    }

    fn matches(&self, labels: &[(&str, &str)]) -> bool {
        match self {
            TagMatch::Key { key, any } => labels
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(_, v)| any.iter().any(|rx| rx.is_match(v))),
            TagMatch::Bare { all } => all
                .iter()
                .all(|rx| labels.iter().any(|(k, v)| rx.is_match(&format!("{k}:{v}")))),
        }
    }
}

/// Whether pprof reads `value` as a numeric range (`parseTagFilterRange`): `N`, `N:`, `:N` or
/// `N:M`, each `N` digits with an optional sign and unit (`32`, `-1`, `4mb`).
fn is_numeric_range(value: &str) -> bool {
    let number = |s: &str| {
        let s = s.strip_prefix(['+', '-']).unwrap_or(s);
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && s[digits..].bytes().all(|b| b.is_ascii_alphabetic())
    };
    match value.split_once(':') {
        None => number(value),
        Some((low, high)) => {
            (number(low) || low.is_empty())
                && (number(high) || high.is_empty())
                && !(low.is_empty() && high.is_empty())
        }
    }
}

/// The samples to keep and to drop by their labels.
#[derive(Clone, Debug, Default)]
pub struct TagFilter {
    focus: Option<TagMatch>,
    ignore: Option<TagMatch>,
}

/// A `-tagfocus` or `-tagignore` that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagError {
    option: &'static str,
    text: String,
    reason: String,
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--{} `{}`: {} (a tag filter is key=regex or regex, alternatives separated by \
             commas, e.g. role=load-generator)",
            self.option, self.text, self.reason
        )
    }
}

impl std::error::Error for TagError {}

/// Whether each expression of a filter matched a sample (pprof warns when one did not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagMatches {
    /// The focus matched a sample (`true` without a focus).
    pub focus: bool,
    /// The ignore matched a sample (`true` without one).
    pub ignore: bool,
}

impl TagFilter {
    /// From pprof's `-tagfocus` and `-tagignore` texts (`None` or empty: no filter), e.g.
    /// `role=load-generator`, `route=/item,/health` or `trace_id`.
    pub fn new(focus: Option<&str>, ignore: Option<&str>) -> Result<TagFilter, TagError> {
        let parse = |option, text: Option<&str>| {
            text.filter(|t| !t.is_empty())
                .map(|t| TagMatch::parse(option, t))
                .transpose()
        };
        Ok(TagFilter {
            focus: parse("tagfocus", focus)?,
            ignore: parse("tagignore", ignore)?,
        })
    }

    /// Whether it keeps every sample.
    pub fn is_empty(&self) -> bool {
        self.focus.is_none() && self.ignore.is_none()
    }

    /// Removes from `profile` the samples it does not keep; says which expressions matched.
    pub fn apply(&self, profile: &mut Profile) -> TagMatches {
        let mut matched = TagMatches {
            focus: self.focus.is_none(),
            ignore: self.ignore.is_none(),
        };
        if self.is_empty() {
            return matched;
        }
        let strings = std::mem::take(&mut profile.string_table);
        let text = |i: i64| {
            usize::try_from(i)
                .ok()
                .and_then(|i| strings.get(i))
                .map_or("", String::as_str)
        };
        // String labels only (a label with `str` 0 is numeric), as pprof's `Sample.Label`.
        let pairs = |labels: &[Label]| -> Vec<(&str, &str)> {
            labels
                .iter()
                .filter(|l| l.str != 0)
                .map(|l| (text(l.key), text(l.str)))
                .collect()
        };
        profile.sample.retain(|s| {
            let labels = pairs(&s.label);
            let focused = self.focus.as_ref().is_none_or(|m| m.matches(&labels));
            let ignored = self.ignore.as_ref().is_some_and(|m| m.matches(&labels));
            matched.focus |= focused && self.focus.is_some();
            matched.ignore |= ignored;
            focused && !ignored
        });
        profile.string_table = strings;
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{str_label, ProfileBuilder};

    fn profile() -> Profile {
        let labels = |pairs: &[(&str, &str)]| -> Vec<_> {
            pairs.iter().map(|(k, v)| str_label(k, v)).collect()
        };
        ProfileBuilder::new(&[("samples", "count")])
            .labelled_sample(&[], &[1], &labels(&[("role", "load-generator")]))
            .labelled_sample(
                &[],
                &[2],
                &labels(&[("role", "server"), ("route", "/item")]),
            )
            .labelled_sample(&[], &[4], &labels(&[("route", "/item/big")]))
            .sample(&[], &[8])
            .build()
    }

    fn kept(focus: Option<&str>, ignore: Option<&str>) -> Vec<i64> {
        let mut p = profile();
        TagFilter::new(focus, ignore).unwrap().apply(&mut p);
        p.sample.iter().map(|s| s.value[0]).collect()
    }

    #[test]
    fn key_and_regex_match_that_keys_values_unanchored() {
        assert_eq!(kept(None, None), [1, 2, 4, 8]);
        assert_eq!(kept(None, Some("role=load-generator")), [2, 4, 8]);
        assert_eq!(kept(Some("role=load"), None), [1], "unanchored");
        assert_eq!(kept(Some("route=^/item$"), None), [2], "anchors hold");
        assert_eq!(kept(Some("route=/item"), Some("role=server")), [4]);
        assert_eq!(
            kept(Some("role=^server$,^load"), None),
            [1, 2],
            "any of them"
        );
        assert_eq!(kept(Some("trace_id=."), None), Vec::<i64>::new());
    }

    #[test]
    fn a_bare_regex_matches_key_colon_value_and_every_one_must() {
        assert_eq!(kept(Some("load-generator"), None), [1]);
        assert_eq!(kept(Some("^route:"), None), [2, 4]);
        assert_eq!(kept(Some("^role:server$,big"), None), Vec::<i64>::new());
        assert_eq!(
            kept(Some("^role:server$,^route:"), None),
            [2],
            "all of them"
        );
        assert_eq!(kept(None, Some("/item")), [1, 8]);
    }

    #[test]
    fn apply_says_which_expressions_matched() {
        let mut p = profile();
        let m = TagFilter::new(Some("route=."), Some("role=nobody"))
            .unwrap()
            .apply(&mut p);
        assert_eq!((m.focus, m.ignore), (true, false));
        let m = TagFilter::default().apply(&mut profile());
        assert_eq!((m.focus, m.ignore), (true, true));
    }

    #[test]
    fn bad_expressions_and_numeric_ranges_are_errors() {
        for (text, reason) in [
            ("role=(", "bad regular expression"),
            ("bytes=1kb:4kb", "numeric tag ranges"),
            ("bytes=:64kb", "numeric tag ranges"),
            ("32", "numeric tag ranges"),
        ] {
            let e = TagFilter::new(Some(text), None).unwrap_err().to_string();
            assert!(
                e.contains(reason) && e.contains("--tagfocus") && e.contains(text),
                "{e}"
            );
        }
        assert!(TagFilter::new(None, Some("v2")).is_ok(), "not a range");
        assert!(TagFilter::new(Some(""), Some("")).unwrap().is_empty());
    }
}
