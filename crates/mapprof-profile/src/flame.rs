//! Flame graphs: folded stacks and their inferno SVG rendering, and differential flame graphs
//! that compare two profiles ([`render_diff_svg`]).
//!
//! A profile with no positive values (nothing recorded, or a sample type that is zero
//! everywhere) still renders: [`render_svg`] writes a small valid SVG that carries the title and
//! says there are no samples, rather than failing as inferno does on empty input. A dump taken
//! during a quiet period is a result, not an error, and `make flame` should not stop on it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

use inferno::differential;
use inferno::flamegraph::color::{BackgroundColor, BasicPalette, Palette};
use inferno::flamegraph::{self, Options};

use crate::app::{self, AppFilter};
use crate::top::format_value;
use crate::view::{Frame, ProfileView};

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
    /// Start each stack a few frames below its outermost application frame, hiding the
    /// runtime's root frames (`mapprof flame --from-app`). Default: `None`, whole stacks.
    pub from_app: Option<FromApp>,
}

/// Where [`FlameOptions::from_app`] starts stacks: `keep` frames of the caller chain below
/// (rootward of) each sample's outermost application frame, as `filter` tells application
/// frames (`app`'s rules). Stacks without application frames stay whole. Only the drawing
/// changes: the profile, and the pprof files written from it, keep every frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromApp {
    /// Frames kept below the outermost application frame.
    pub keep: usize,
    /// Which frames are the application's.
    pub filter: AppFilter,
}

impl Default for FromApp {
    /// [`DEFAULT_FROM_APP_FRAMES`] frames, the default [`AppFilter`].
    fn default() -> FromApp {
        FromApp {
            keep: DEFAULT_FROM_APP_FRAMES,
            filter: AppFilter::default(),
        }
    }
}

impl FromApp {
    /// What the subtitle says of it.
    fn note(&self) -> String {
        format!(
            "; stacks start {} frames below the application's outermost frame (runtime frames \
             further out hidden)",
            self.keep
        )
    }
}

/// Frames kept below the outermost application frame by default (`--from-app` without a
/// number): enough to see what runs the application's code (a tokio task's poll, a thread's
/// start), few enough that the application is at the bottom of the graph, where a tokio
/// service's stacks (a median of 74 frames in issue 13's measure, against Go's 7) put it
/// below the fold.
pub const DEFAULT_FROM_APP_FRAMES: usize = 2;

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
    folded_stacks_from(view, sample_index, None)
}

/// [`folded_stacks`], each stack started as `from_app` says (whole when `None`).
pub fn folded_stacks_from(
    view: &ProfileView<'_>,
    sample_index: usize,
    from_app: Option<&FromApp>,
) -> Vec<String> {
    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    let mut frames: Vec<&Frame<'_>> = Vec::new();
    let mut names = Vec::new();
    for sample in view.samples() {
        let Ok(value) = u64::try_from(sample.value(sample_index)) else {
            continue;
        };
        if value == 0 {
            continue;
        }
        frames.clear();
        frames.extend(sample.frames());
        if let Some(from) = from_app {
            let kept = app::frames_from_application(&frames, &from.filter, from.keep);
            frames.truncate(kept);
        }
        names.clear();
        names.extend(frames.iter().map(|f| escape_frame(&f.function)));
        if names.is_empty() {
            names.push(Cow::Borrowed(NO_STACK));
        }
        // Frames come leaf first; folded lines read root first.
        names.reverse();
        let total = stacks.entry(names.join(";")).or_insert(0);
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
    let lines = folded_stacks_from(view, sample_index, opts.from_app.as_ref());
    if lines.is_empty() {
        return write_no_samples_svg(&title, NO_SAMPLES, out);
    }
    let unit = view.sample_types().get(sample_index).map_or("", |t| t.unit);
    let total = positive_total(view, sample_index);

    let mut options = Options::default();
    options.title = title;
    let mut subtitle = format!("total {}", format_value(total, unit));
    if let Some(from) = &opts.from_app {
        subtitle += &from.note();
    }
    options.subtitle = Some(subtitle);
    options.count_name = if unit.is_empty() { "samples" } else { unit }.to_owned();
    options.hash = true;
    options.colors = Palette::Basic(match view.kind_name() {
        "heap" | "allocs" | "resize" => BasicPalette::Mem,
        "mutex" | "block" | "contention" => BasicPalette::Io,
        _ => BasicPalette::Hot,
    });
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
}

/// Options for [`render_diff_svg`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiffOptions {
    /// The graph's title. Default: [`default_diff_title`].
    pub title: Option<String>,
    /// The profile's name for the default title, e.g. `heap`. Default: the new profile's
    /// [`ProfileView::kind_name`].
    pub profile_name: Option<String>,
    /// What the base (before) profile is called in the title and subtitle. Default: `"base"`.
    pub base_label: String,
    /// What the new (after) profile is called in the title and subtitle. Default: `"new"`.
    pub new_label: String,
    /// Scale the base profile's values so that its total equals the new profile's, before
    /// comparing (inferno's `--normalize`). Two runs of different length or throughput are then
    /// compared by share: a frame is red when it takes a larger *part* of the new profile.
    /// Without it everything is red when the new run simply recorded more. Default: true.
    pub normalize: bool,
    /// Replace hex addresses in frame names (`0x55d3c0a1b2c3`, an unsymbolized frame) with
    /// `0x...` in both profiles (inferno's `--strip-hex`): address-space randomisation moves
    /// them from run to run, so they would never match otherwise. Default: true.
    pub strip_hex: bool,
    /// Start both profiles' stacks below their outermost application frame, as
    /// [`FlameOptions::from_app`] (`mapprof diff --from-app`). Default: `None`.
    pub from_app: Option<FromApp>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            title: None,
            profile_name: None,
            base_label: "base".to_owned(),
            new_label: "new".to_owned(),
            normalize: true,
            strip_hex: true,
            from_app: None,
        }
    }
}

/// The default title of a differential flame graph: [`default_title`] of the new profile
/// followed by `": <new label> vs <base label>"`, e.g.
/// `heap profile — alloc_space (bytes): new vs base`.
pub fn default_diff_title(new: &ProfileView<'_>, new_index: usize, opts: &DiffOptions) -> String {
    format!(
        "{}: {} vs {}",
        default_title(new, new_index, opts.profile_name.as_deref()),
        opts.new_label,
        opts.base_label
    )
}

/// Renders a differential flame graph as SVG: the flame graph of the values at `new_index` of
/// `new`, each frame coloured by how its own value (its value as the leaf of a stack) changed
/// from the values at `base_index` of `base`.
///
/// This is inferno's (and Brendan Gregg's) differential flame graph: the stacks of both
/// profiles are folded ([`folded_stacks`]), paired by [`inferno::differential`] into lines
/// `stack <base value> <new value>` (the base scaled to the new total when
/// [`DiffOptions::normalize`] is set, rounding down), and drawn with the new values as widths.
/// A frame is red when its value grew, blue when it shrank, the more saturated the larger the
/// change relative to the largest change in the graph; frames that only pass value on to their
/// callees, and frames whose value did not change, are near-white. A stack only in `base` has
/// no width in the new profile and is not drawn. The tooltip of each frame gives its value and
/// the change as a percentage of the new total.
///
/// Both sample types must have the same unit (an `InvalidInput` error otherwise). When neither
/// profile has a positive value, or only the base has, writes a valid SVG that says so, as
/// [`render_svg`] does for an empty profile.
pub fn render_diff_svg(
    base: &ProfileView<'_>,
    base_index: usize,
    new: &ProfileView<'_>,
    new_index: usize,
    opts: &DiffOptions,
    out: impl Write,
) -> io::Result<()> {
    let unit = new.sample_types().get(new_index).map_or("", |t| t.unit);
    let base_unit = base.sample_types().get(base_index).map_or("", |t| t.unit);
    if unit != base_unit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot compare values in {base_unit:?} ({}) with values in {unit:?} ({})",
                opts.base_label, opts.new_label
            ),
        ));
    }
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| default_diff_title(new, new_index, opts));
    let base_lines = folded_stacks_from(base, base_index, opts.from_app.as_ref());
    let new_lines = folded_stacks_from(new, new_index, opts.from_app.as_ref());
    if new_lines.is_empty() {
        let message = if base_lines.is_empty() {
            NO_SAMPLES.to_owned()
        } else {
            format!(
                "No samples in {}: nothing was recorded for this sample type ({} has {}).",
                opts.new_label,
                opts.base_label,
                format_value(positive_total(base, base_index), unit)
            )
        };
        return write_no_samples_svg(&title, &message, out);
    }

    let mut paired = Vec::new();
    differential::from_readers(
        differential::Options {
            // With an empty base there is nothing to scale (and inferno would divide by 0).
            normalize: opts.normalize && !base_lines.is_empty(),
            strip_hex: opts.strip_hex,
        },
        folded_text(&base_lines).as_bytes(),
        folded_text(&new_lines).as_bytes(),
        &mut paired,
    )?;
    let paired =
        String::from_utf8(paired).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;

    let fmt = |view: &ProfileView<'_>, index| format_value(positive_total(view, index), unit);
    let scaling = if opts.normalize {
        format!(
            "{} normalized to {}'s total",
            opts.base_label, opts.new_label
        )
    } else {
        "values as recorded, not normalized".to_owned()
    };
    let mut options = Options::default();
    options.title = title;
    options.subtitle = Some(format!(
        "red: larger in {new_label}, blue: smaller; {scaling} ({new_label} {}, {base_label} \
         {}){}",
        fmt(new, new_index),
        fmt(base, base_index),
        opts.from_app.as_ref().map_or(String::new(), FromApp::note),
        new_label = opts.new_label,
        base_label = opts.base_label,
    ));
    options.count_name = if unit.is_empty() { "samples" } else { unit }.to_owned();
    // Neutral, so that red and blue are the only colours that mean something.
    options.bgcolors = Some(BackgroundColor::Grey);
    // inferno sorts the lines (their order from `from_readers` is a hash map's), so the output
    // does not depend on it.
    flamegraph::from_lines(&mut options, paired.lines(), out)
}

/// Folded lines as the text inferno's readers take: one per line.
fn folded_text(lines: &[String]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The sum of the positive values at `index`: the width of the whole flame graph.
fn positive_total(view: &ProfileView<'_>, index: usize) -> i64 {
    view.samples()
        .map(|s| s.value(index).max(0))
        .fold(0, i64::saturating_add)
}

/// The subtitle of a graph without samples.
const NO_SAMPLES: &str = "No samples: nothing was recorded for this sample type.";

fn write_no_samples_svg(title: &str, message: &str, mut out: impl Write) -> io::Result<()> {
    let title = xml_escape(title);
    let message = xml_escape(message);
    write!(
        out,
        r##"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="1200" height="90" viewBox="0 0 1200 90" xmlns="http://www.w3.org/2000/svg">
<title>{title}</title>
<rect x="0" y="0" width="100%" height="100%" fill="#eeeeee"/>
<text id="title" x="600" y="30" text-anchor="middle" font-family="Verdana" font-size="17">{title}</text>
<text id="subtitle" x="600" y="62" text-anchor="middle" font-family="Verdana" font-size="12">{message}</text>
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
    use crate::proto::Profile;
    use crate::testing::ProfileBuilder;

    /// Two stacks: main;[u8; 4]::fill (3 twice, so 6) and main (4); one negative sample.
    fn profile() -> Profile {
        ProfileBuilder::new(&[("alloc_space", "bytes")])
            .names(&["[u8; 4]::fill", "main"], &[3])
            .names(&["main"], &[4])
            .names(&["[u8; 4]::fill", "main"], &[3])
            .names(&["main"], &[-9])
            .build()
    }

    /// A profile of one sample type (`alloc_space`, `bytes`) with one sample per stack; stacks
    /// are written root first.
    fn stacks_profile(stacks: &[(&[&str], i64)]) -> Profile {
        stacks
            .iter()
            .fold(
                ProfileBuilder::new(&[("alloc_space", "bytes")]),
                |b, (stack, v)| {
                    let leaf_first: Vec<&str> = stack.iter().rev().copied().collect();
                    b.names(&leaf_first, &[*v])
                },
            )
            .build()
    }

    fn diff_svg(base: &Profile, new: &Profile, opts: &DiffOptions) -> String {
        let base = ProfileView::new(base).unwrap();
        let new = ProfileView::new(new).unwrap();
        let mut svg = Vec::new();
        render_diff_svg(&base, 0, &new, 0, opts, &mut svg).unwrap();
        String::from_utf8(svg).unwrap()
    }

    /// Parses `svg` (panicking on malformed XML) into the graph title, the subtitle, and per
    /// frame its tooltip and fill colour.
    fn parse_svg(svg: &str) -> (String, String, Vec<(String, String)>) {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(svg);
        let (mut title, mut subtitle, mut frames) = (String::new(), String::new(), Vec::new());
        let (mut in_text, mut in_title, mut tooltip) = (None::<String>, false, String::new());
        let mut g_depth = 0; // Frames are `<g><title>..</title><rect/>..</g>`.
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    g_depth += usize::from(e.name().as_ref() == b"g");
                    in_title = g_depth > 0 && e.name().as_ref() == b"title";
                    in_text = (e.name().as_ref() == b"text").then(|| {
                        e.attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == b"id")
                            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                            .unwrap_or_default()
                    });
                }
                Ok(Event::Empty(e)) if e.name().as_ref() == b"rect" => {
                    let fill = e.attributes().flatten().find(|a| a.key.as_ref() == b"fill");
                    if let (Some(fill), false) = (fill, tooltip.is_empty()) {
                        let fill = String::from_utf8_lossy(&fill.value).into_owned();
                        frames.push((std::mem::take(&mut tooltip), fill));
                    }
                }
                Ok(Event::Text(t)) => {
                    let text = t.decode().unwrap().into_owned();
                    match in_text.as_deref() {
                        Some("title") => title.push_str(&text),
                        Some("subtitle") => subtitle.push_str(&text),
                        _ if in_title => tooltip = text,
                        _ => {}
                    }
                }
                Ok(Event::GeneralRef(r)) => {
                    // Entities split text events: `&apos;` and friends.
                    let c = r.resolve_char_ref().ok().flatten().map_or_else(
                        || match r.as_ref() {
                            b"apos" => "'".to_owned(),
                            b"amp" => "&".to_owned(),
                            b"lt" => "<".to_owned(),
                            b"gt" => ">".to_owned(),
                            b"quot" => "\"".to_owned(),
                            other => String::from_utf8_lossy(other).into_owned(),
                        },
                        String::from,
                    );
                    match in_text.as_deref() {
                        Some("title") => title.push_str(&c),
                        Some("subtitle") => subtitle.push_str(&c),
                        _ if in_title => tooltip.push_str(&c),
                        _ => {}
                    }
                }
                Ok(Event::End(e)) => {
                    g_depth -= usize::from(e.name().as_ref() == b"g");
                    (in_title, in_text) = (false, None);
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed XML at {}: {e}", reader.buffer_position()),
            }
        }
        (title, subtitle, frames)
    }

    /// The fill of the frame whose tooltip starts with `name (`.
    fn fill_of<'a>(frames: &'a [(String, String)], name: &str) -> Option<&'a str> {
        let prefix = format!("{name} (");
        frames
            .iter()
            .find(|(t, _)| t.starts_with(&prefix))
            .map(|(_, f)| f.as_str())
    }

    /// `rgb(255,c,c)` with c < 250: inferno's red; `rgb(c,c,255)`: its blue.
    fn is_red(fill: &str) -> bool {
        fill.starts_with("rgb(255,") && fill != "rgb(255,250,250)"
    }
    fn is_blue(fill: &str) -> bool {
        fill.ends_with(",255)") && !fill.starts_with("rgb(255,")
    }
    const WHITE: &str = "rgb(250,250,250)";

    #[test]
    fn diff_colours_growth_red_shrinkage_blue_and_leaves_out_what_is_gone() {
        let base = stacks_profile(&[
            (&["main", "same"], 50),
            (&["main", "shrunk"], 50),
            (&["main", "gone"], 20),
        ]);
        let new = stacks_profile(&[
            (&["main", "same"], 60),
            (&["main", "shrunk"], 10),
            (&["main", "fresh"], 50),
        ]);
        let opts = DiffOptions {
            normalize: false,
            ..Default::default()
        };
        let svg = diff_svg(&base, &new, &opts);
        let (title, subtitle, frames) = parse_svg(&svg);
        assert_eq!(title, "allocs profile — alloc_space (bytes): new vs base");
        assert_eq!(
            subtitle,
            "red: larger in new, blue: smaller; values as recorded, not normalized \
             (new 120B, base 120B)"
        );
        // Only in new: red at full saturation (the largest change); grown: red; shrunk: blue.
        assert_eq!(
            fill_of(&frames, "fresh"),
            Some("rgb(255,100,100)"),
            "{frames:?}"
        );
        assert!(is_red(fill_of(&frames, "same").unwrap()), "{frames:?}");
        assert!(is_blue(fill_of(&frames, "shrunk").unwrap()), "{frames:?}");
        // Only in base: no width in the new profile, not drawn.
        assert_eq!(fill_of(&frames, "gone"), None, "{frames:?}");
        // A frame that only passes value on is neutral.
        assert_eq!(fill_of(&frames, "main"), Some(WHITE), "{frames:?}");
        // Widths are the new profile's; tooltips give the change in percent of the new total.
        let fresh = frames
            .iter()
            .find(|(t, _)| t.starts_with("fresh ("))
            .unwrap();
        assert_eq!(fresh.0, "fresh (50 bytes, 41.67%; +41.67%)");
    }

    #[test]
    fn normalized_diff_compares_shares_not_amounts() {
        // The new run recorded twice as much, in the same proportions.
        let base = stacks_profile(&[(&["main", "a"], 30), (&["main", "b"], 10)]);
        let new = stacks_profile(&[(&["main", "a"], 60), (&["main", "b"], 20)]);
        let (_, subtitle, frames) = parse_svg(&diff_svg(&base, &new, &DiffOptions::default()));
        assert_eq!(
            subtitle,
            "red: larger in new, blue: smaller; base normalized to new's total (new 80B, base 40B)"
        );
        assert_eq!(fill_of(&frames, "a"), Some(WHITE), "{frames:?}");
        assert_eq!(fill_of(&frames, "b"), Some(WHITE), "{frames:?}");

        let opts = DiffOptions {
            normalize: false,
            ..Default::default()
        };
        let (_, _, frames) = parse_svg(&diff_svg(&base, &new, &opts));
        assert!(is_red(fill_of(&frames, "a").unwrap()), "{frames:?}");
        assert!(is_red(fill_of(&frames, "b").unwrap()), "{frames:?}");
    }

    #[test]
    fn diff_labels_and_title_options_are_used_and_escaped() {
        let base = stacks_profile(&[(&["main"], 1)]);
        let new = stacks_profile(&[(&["main"], 2)]);
        let mut opts = DiffOptions {
            base_label: "v1 <old>".into(),
            new_label: "v2 & co".into(),
            profile_name: Some("heap".into()),
            ..Default::default()
        };
        let (title, subtitle, _) = parse_svg(&diff_svg(&base, &new, &opts));
        assert_eq!(
            title,
            "heap profile — alloc_space (bytes): v2 & co vs v1 <old>"
        );
        assert!(
            subtitle.starts_with(
                "red: larger in v2 & co, blue: smaller; v1 <old> normalized to v2 & co's total"
            ),
            "{subtitle}"
        );
        opts.title = Some("before/after".into());
        let (title, _, _) = parse_svg(&diff_svg(&base, &new, &opts));
        assert_eq!(title, "before/after");
    }

    #[test]
    fn diff_with_an_empty_side_still_renders() {
        let full = stacks_profile(&[(&["main", "a"], 30)]);
        let empty = stacks_profile(&[(&["main", "a"], 0)]);
        // Empty base: everything is new, hence red.
        let (title, _, frames) = parse_svg(&diff_svg(&empty, &full, &DiffOptions::default()));
        assert_eq!(title, "allocs profile — alloc_space (bytes): new vs base");
        assert_eq!(
            fill_of(&frames, "a"),
            Some("rgb(255,100,100)"),
            "{frames:?}"
        );
        // Empty new: nothing to draw; a valid SVG says so.
        let (title, subtitle, frames) =
            parse_svg(&diff_svg(&full, &empty, &DiffOptions::default()));
        assert_eq!(title, "allocs profile — alloc_space (bytes): new vs base");
        assert_eq!(
            subtitle,
            "No samples in new: nothing was recorded for this sample type (base has 30B)."
        );
        assert!(frames.is_empty());
        // Both empty: the plain no-samples graph.
        let (_, subtitle, _) = parse_svg(&diff_svg(&empty, &empty, &DiffOptions::default()));
        assert_eq!(subtitle, NO_SAMPLES);
    }

    #[test]
    fn diff_refuses_sample_types_of_different_units() {
        let base = stacks_profile(&[(&["main"], 1)]);
        let mut new = base.clone();
        let unit = new.sample_type[0].unit as usize;
        new.string_table[unit] = "nanoseconds".into();
        let (base, new) = (
            ProfileView::new(&base).unwrap(),
            ProfileView::new(&new).unwrap(),
        );
        let err =
            render_diff_svg(&base, 0, &new, 0, &DiffOptions::default(), Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            "cannot compare values in \"bytes\" (base) with values in \"nanoseconds\" (new)"
        );
    }

    #[test]
    fn diff_rendering_is_deterministic_and_strips_addresses() {
        let base = stacks_profile(&[
            (&["main", "0x55d3c0a1b2c3"], 10),
            (&["main", "b"], 10),
            (&["main", "c"], 5),
        ]);
        let new = stacks_profile(&[
            (&["main", "0x56aa00001000"], 10),
            (&["main", "b"], 30),
            (&["main", "d"], 5),
        ]);
        let first = diff_svg(&base, &new, &DiffOptions::default());
        for _ in 0..3 {
            assert_eq!(first, diff_svg(&base, &new, &DiffOptions::default()));
        }
        let (_, _, frames) = parse_svg(&first);
        // The two runs' unsymbolized frames are one frame, which shrank by share.
        assert!(is_blue(fill_of(&frames, "0x...").unwrap()), "{frames:?}");
        assert!(!first.contains("0x55d3c0a1b2c3") && !first.contains("0x56aa00001000"));
    }

    #[test]
    fn from_app_starts_stacks_below_the_outermost_application_frame() {
        const RUNTIME: [&str; 4] = [
            "tokio::runtime::task::harness::Harness<T,S>::poll",
            "tokio::runtime::scheduler::multi_thread::worker::run",
            "std::sys::pal::unix::thread::Thread::new::thread_start",
            "start_thread",
        ];
        let stack = |leaf: &[&'static str]| -> Vec<&'static str> {
            leaf.iter().chain(&RUNTIME).copied().collect()
        };
        let p = ProfileBuilder::new(&[("samples", "count")])
            .names(
                &stack(&[
                    "hashbrown::raw::RawTable<T,A>::reserve_rehash",
                    "cache_service::cache::Cache::update",
                    "tokio::sync::rwlock::RwLock<T>::write",
                    "cache_service::server::handle::{{closure}}",
                ]),
                &[3],
            )
            .names(
                &stack(&["cache_service::server::handle::{{closure}}"]),
                &[2],
            )
            .names(&RUNTIME, &[5])
            .build();
        let v = ProfileView::unpruned(&p).unwrap();
        let from = |keep| FromApp {
            keep,
            ..FromApp::default()
        };
        let idle = "start_thread;std::sys::pal::unix::thread::Thread::new::thread_start;\
                    tokio::runtime::scheduler::multi_thread::worker::run;\
                    tokio::runtime::task::harness::Harness<T,S>::poll 5";
        // Cut below the handler (the outermost application frame), not below `update` (the
        // innermost): the application's own callers stay, and so does a library frame
        // between two application frames.
        assert_eq!(
            folded_stacks_from(&v, 0, Some(&from(0))),
            [
                "cache_service::server::handle::{{closure}} 2",
                "cache_service::server::handle::{{closure}};\
                 tokio::sync::rwlock::RwLock<T>::write;cache_service::cache::Cache::update;\
                 hashbrown::raw::RawTable<T,A>::reserve_rehash 3",
                idle,
            ]
        );
        assert!(
            folded_stacks_from(&v, 0, Some(&from(1))).contains(
                &"tokio::runtime::task::harness::Harness<T,S>::poll;\
                  cache_service::server::handle::{{closure}} 2"
                    .to_owned()
            ),
            "one runtime frame kept"
        );
        // Enough frames kept: the whole stacks, as without the option.
        assert_eq!(
            folded_stacks_from(&v, 0, Some(&from(100))),
            folded_stacks(&v, 0)
        );
        assert_eq!(folded_stacks_from(&v, 0, None), folded_stacks(&v, 0));
        // The total is the same: only frames are hidden, no sample.
        let total = |lines: Vec<String>| -> u64 {
            lines
                .iter()
                .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
                .sum()
        };
        assert_eq!(total(folded_stacks_from(&v, 0, Some(&from(0)))), 10);
        // The graph says so.
        let opts = FlameOptions {
            from_app: Some(FromApp::default()),
            ..FlameOptions::default()
        };
        let mut svg = Vec::new();
        render_svg(&v, 0, &opts, &mut svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("stacks start 2 frames below"), "{svg}");
        // A differential graph of the profile against itself, the same way.
        let diff = DiffOptions {
            from_app: Some(from(0)),
            ..DiffOptions::default()
        };
        let mut svg = Vec::new();
        render_diff_svg(&v, 0, &v, 0, &diff, &mut svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("stacks start 0 frames below"), "{svg}");
        assert!(svg.contains("Cache::update"));
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
