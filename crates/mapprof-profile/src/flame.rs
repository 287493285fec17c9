//! Flame graphs: folded stacks and their inferno SVG rendering.
//!
//! A profile with no positive values (nothing recorded, or a sample type that is zero
//! everywhere) still renders: [`render_svg`] writes a small valid SVG that carries the title and
//! says there are no samples, rather than failing as inferno does on empty input. A dump taken
//! during a quiet period is a result, not an error, and `make flame` should not stop on it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

use inferno::flamegraph::color::{BasicPalette, Palette};
use inferno::flamegraph::{self, Options};

use crate::top::format_value;
use crate::view::ProfileView;

/// What replaces a `;` inside a frame name (as in `[T; N]`), since inferno splits frames on
/// `;`: the full-width semicolon U+FF1B, which reads the same and is not a separator.
pub const SEMICOLON_REPLACEMENT: char = '\u{ff1b}';

/// The frame shown for a sample that has no stack at all.
const NO_STACK: &str = "[no stack]";

/// Options for [`render_svg`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlameOptions {
    /// The graph's title. Default: [`default_title`] of the profile name and the sample type.
    pub title: Option<String>,
    /// The profile's name for the default title, e.g. `heap`. Default:
    /// [`ProfileView::kind_name`].
    pub profile_name: Option<String>,
}

/// Makes `name` safe as one frame of a folded line: `;` becomes [`SEMICOLON_REPLACEMENT`] and
/// line breaks become spaces (a folded stack is one line).
pub fn escape_frame(name: &str) -> Cow<'_, str> {
    if name.contains([';', '\n', '\r']) {
        Cow::Owned(
            name.chars()
                .map(|c| match c {
                    ';' => SEMICOLON_REPLACEMENT,
                    '\n' | '\r' => ' ',
                    c => c,
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(name)
    }
}

/// The folded stacks of the values at `sample_index`: `root;...;leaf value`, one line per
/// distinct stack (values of equal stacks summed), sorted. Samples whose value is zero or
/// negative are left out: a flame graph cannot draw them.
pub fn folded_stacks(view: &ProfileView<'_>, sample_index: usize) -> Vec<String> {
    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    let mut frames = Vec::new();
    for sample in view.samples() {
        let Ok(value) = u64::try_from(sample.value(sample_index)) else {
            continue;
        };
        if value == 0 {
            continue;
        }
        frames.clear();
        frames.extend(sample.frames().map(|f| escape_frame(&f.function)));
        if frames.is_empty() {
            frames.push(Cow::Borrowed(NO_STACK));
        }
        // Frames come leaf first; folded lines read root first.
        frames.reverse();
        let total = stacks.entry(frames.join(";")).or_insert(0);
        *total = total.saturating_add(value);
    }
    stacks
        .into_iter()
        .map(|(stack, value)| format!("{stack} {value}"))
        .collect()
}

/// The default title: `"<profile name> profile — <sample type> (<unit>)"`, e.g.
/// `heap profile — alloc_space (bytes)`. `profile_name` defaults to
/// [`ProfileView::kind_name`].
pub fn default_title(
    view: &ProfileView<'_>,
    sample_index: usize,
    profile_name: Option<&str>,
) -> String {
    let name = profile_name.unwrap_or_else(|| view.kind_name());
    match view.sample_types().get(sample_index) {
        Some(t) if t.unit.is_empty() => format!("{name} profile — {}", t.name),
        Some(t) => format!("{name} profile — {} ({})", t.name, t.unit),
        None => format!("{name} profile"),
    }
}

/// Renders the flame graph of the values at `sample_index` as SVG.
///
/// Frame widths are in the sample type's unit (inferno's `count_name`), colours come from a
/// hash of the function name (deterministic, and the same function has the same colour in
/// every graph), and the palette follows the kind of profile: memory greens for heap-like
/// profiles, blues for contention, the classic hot palette otherwise. With no positive values,
/// writes a valid SVG saying so (see the module documentation).
pub fn render_svg(
    view: &ProfileView<'_>,
    sample_index: usize,
    opts: &FlameOptions,
    out: impl Write,
) -> io::Result<()> {
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| default_title(view, sample_index, opts.profile_name.as_deref()));
    let lines = folded_stacks(view, sample_index);
    if lines.is_empty() {
        return write_no_samples_svg(&title, out);
    }
    let unit = view.sample_types().get(sample_index).map_or("", |t| t.unit);
    let total: i64 = view
        .samples()
        .map(|s| s.value(sample_index).max(0))
        .fold(0, i64::saturating_add);

    let mut options = Options::default();
    options.title = title;
    options.subtitle = Some(format!("total {}", format_value(total, unit)));
    options.count_name = if unit.is_empty() { "samples" } else { unit }.to_owned();
    options.hash = true;
    options.colors = Palette::Basic(match view.kind_name() {
        "heap" | "allocs" | "resize" => BasicPalette::Mem,
        "contention" => BasicPalette::Io,
        _ => BasicPalette::Hot,
    });
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
}

fn write_no_samples_svg(title: &str, mut out: impl Write) -> io::Result<()> {
    let title = xml_escape(title);
    write!(
        out,
        r##"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="1200" height="90" viewBox="0 0 1200 90" xmlns="http://www.w3.org/2000/svg">
<title>{title}</title>
<rect x="0" y="0" width="100%" height="100%" fill="#eeeeee"/>
<text id="title" x="600" y="30" text-anchor="middle" font-family="Verdana" font-size="17">{title}</text>
<text id="subtitle" x="600" y="62" text-anchor="middle" font-family="Verdana" font-size="12">No samples: nothing was recorded for this sample type.</text>
</svg>
"##
    )
}

fn xml_escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut escaped = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Function, Line, Location, Profile, Sample, ValueType};

    /// Two stacks: main;[u8; 4]::fill (3 twice, so 6) and main (4); one negative sample.
    fn profile() -> Profile {
        let sample = |locs: Vec<u64>, v| Sample {
            location_id: locs,
            value: vec![v],
            label: vec![],
        };
        let loc = |id, f| Location {
            id,
            line: vec![Line {
                function_id: f,
                line: 1,
                column: 0,
            }],
            ..Default::default()
        };
        Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            sample: vec![
                sample(vec![2, 1], 3),
                sample(vec![1], 4),
                sample(vec![2, 1], 3),
                sample(vec![1], -9),
            ],
            location: vec![loc(1, 1), loc(2, 2)],
            function: vec![
                Function {
                    id: 1,
                    name: 3,
                    ..Default::default()
                },
                Function {
                    id: 2,
                    name: 4,
                    ..Default::default()
                },
            ],
            string_table: ["", "alloc_space", "bytes", "main", "[u8; 4]::fill"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn folded_stacks_are_root_first_merged_and_escaped() {
        let p = profile();
        let v = ProfileView::new(&p).unwrap();
        assert_eq!(folded_stacks(&v, 0), ["main 4", "main;[u8； 4]::fill 6"]);
    }

    #[test]
    fn default_title_names_profile_and_sample_type() {
        let p = profile();
        let v = ProfileView::new(&p).unwrap();
        assert_eq!(
            default_title(&v, 0, None),
            "allocs profile — alloc_space (bytes)"
        );
        assert_eq!(
            default_title(&v, 0, Some("heap")),
            "heap profile — alloc_space (bytes)"
        );
    }

    #[test]
    fn no_samples_still_renders_an_svg_with_the_title() {
        let mut p = profile();
        p.sample.clear();
        let v = ProfileView::new(&p).unwrap();
        let opts = FlameOptions {
            title: Some("a <b> & c".into()),
            ..Default::default()
        };
        let mut svg = Vec::new();
        render_svg(&v, 0, &opts, &mut svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("<title>a &lt;b&gt; &amp; c</title>"), "{svg}");
        assert!(svg.contains("No samples"));
    }

    #[test]
    fn rendering_is_deterministic() {
        let p = profile();
        let v = ProfileView::new(&p).unwrap();
        let render = || {
            let mut svg = Vec::new();
            render_svg(&v, 0, &FlameOptions::default(), &mut svg).unwrap();
            svg
        };
        let first = render();
        assert_eq!(first, render());
        let text = String::from_utf8(first).unwrap();
        assert!(text.contains("allocs profile — alloc_space (bytes)"));
        assert!(text.contains("main (10 bytes, 100.00%)"), "{text}");
    }
}
