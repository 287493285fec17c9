//! Span fields as labels: [`MapprofLayer`], a `tracing_subscriber` layer.

use super::task::Labels;
use mapprof_rt::labels as rt;
use std::cell::RefCell;
use std::fmt;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A `tracing_subscriber` layer that makes chosen fields of spans labels while the span is
/// entered, so that an instrumented handler's samples carry its trace id with no mapprof code
/// in the handler:
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// tracing_subscriber::registry()
///     .with(mapprof::MapprofLayer::new().label_field("trace_id").label_field("route"))
///     .init();
///
/// #[tracing::instrument(fields(route = "/item GET"))]
/// async fn get_item(trace_id: &str) { /* samples here carry trace_id and route */ }
/// ```
///
/// A span's labels are current from each enter to the matching exit, on the entering thread;
/// `#[instrument]` on an async fn (or `.instrument(span)`) enters the span for every poll, so
/// the labels follow the task across `.await`. Nested spans compose, inner keys winning, and
/// so do [`crate::set_labels`] and [`crate::WithLabels`]. A field recorded later
/// (`Span::record`) takes effect at the span's next enter. Field values are formatted as
/// `tracing` prints them (`%` fields with `Display`, others with `Debug`, strings bare).
///
/// # Cardinality
///
/// A trace id per request makes one label set per *sampled* request. The first
/// [`crate::MAX_LABEL_VALUES`] distinct values of a key that samples carry are kept; later
/// ones read `overflow`, the span's other fields kept (`trace_id=overflow, route=/item GET`),
/// and [`crate::label_values_capped`] counts them. So the routes of every request stay told
/// apart, and the trace ids of the first sampled ones: find a slow request's samples while
/// the service is young, or label with a coarser field (a route, a tenant) for a long run.
///
/// # Cost
///
/// A span with none of the chosen fields costs a field visit at its creation and an
/// extension lookup at each enter. One with labels allocates them once at creation (and at
/// each `record` of a chosen field), and each enter and exit is a [`crate::WithLabels`]
/// poll's cost plus the lookup.
#[derive(Clone, Debug, Default)]
pub struct MapprofLayer {
    fields: Vec<&'static str>,
    span_name_key: Option<&'static str>,
}

impl MapprofLayer {
    /// A layer that labels nothing until told which fields to take.
    pub fn new() -> MapprofLayer {
        MapprofLayer::default()
    }

    /// Makes span field `name` a label of the same key, in every span that has it.
    pub fn label_field(mut self, name: &'static str) -> MapprofLayer {
        if !self.fields.contains(&name) {
            self.fields.push(name);
        }
        self
    }

    /// Labels every span's samples with its name, under `key` (`span` is a good choice):
    /// `span=get_item`. Span names are few and static, so this is cheap in label sets.
    pub fn label_span_name(mut self, key: &'static str) -> MapprofLayer {
        self.span_name_key = Some(key);
        self
    }
}

/// What a span contributes: its chosen fields' values, and their labels laid out.
struct SpanLabels {
    values: Vec<(&'static str, String)>,
    labels: Labels,
}

impl SpanLabels {
    fn new(values: Vec<(&'static str, String)>) -> SpanLabels {
        let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        SpanLabels {
            labels: Labels::new(&pairs),
            values,
        }
    }
}

/// Collects the chosen fields' values of a span.
struct Chosen<'a> {
    layer: &'a MapprofLayer,
    values: Vec<(&'static str, String)>,
    /// Whether a value was added or changed.
    changed: bool,
}

impl Chosen<'_> {
    fn set(&mut self, field: &Field, value: String) {
        let name = field.name();
        if !self.layer.fields.contains(&name) {
            return;
        }
        match self.values.iter_mut().find(|(k, _)| *k == name) {
            Some(entry) if entry.1 == value => return,
            Some(entry) => entry.1 = value,
            None => self.values.push((name, value)),
        }
        self.changed = true;
    }
}

impl Visit for Chosen<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.layer.fields.contains(&field.name()) {
            self.set(field, format!("{value:?}"));
        }
    }
}

thread_local! {
    /// The spans this thread has entered with labels, innermost last: what each exit restores.
    static ENTERED: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

struct Entry {
    span: u64,
    saved: rt::Saved,
    labels: Labels,
}

impl<S> Layer<S> for MapprofLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut chosen = Chosen {
            layer: self,
            values: Vec::new(),
            changed: false,
        };
        if let Some(key) = self.span_name_key {
            chosen
                .values
                .push((key, attrs.metadata().name().to_owned()));
        }
        attrs.record(&mut chosen);
        if chosen.values.is_empty() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanLabels::new(chosen.values));
        }
    }

    fn on_record(&self, id: &Id, record: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let values = match extensions.get_mut::<SpanLabels>() {
            Some(labels) => labels.values.clone(),
            None => Vec::new(),
        };
        let mut chosen = Chosen {
            layer: self,
            values,
            changed: false,
        };
        record.record(&mut chosen);
        if chosen.changed {
            extensions.replace(SpanLabels::new(chosen.values));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(labels) = span
            .extensions()
            .get::<SpanLabels>()
            .map(|l| l.labels.clone())
        else {
            return;
        };
        let saved = rt::enter_prepared(labels.prepared());
        let entry = Entry {
            span: id.into_u64(),
            saved,
            labels,
        };
        let _ = ENTERED.try_with(|entered| entered.borrow_mut().push(entry));
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let _ = ENTERED.try_with(|entered| exit(&mut entered.borrow_mut(), id.into_u64()));
    }
}

/// Restores what entering `span` replaced. Spans exit in the reverse order of their enters;
/// one that exits early takes its labels out from under the spans entered after it, which
/// are entered again on top.
fn exit(entered: &mut Vec<Entry>, span: u64) {
    let Some(at) = entered.iter().rposition(|e| e.span == span) else {
        return;
    };
    let later = entered.split_off(at + 1);
    for e in later.iter().rev() {
        rt::leave_prepared(e.saved, e.labels.prepared());
    }
    if let Some(e) = entered.pop() {
        rt::leave_prepared(e.saved, e.labels.prepared());
    }
    for mut e in later {
        e.saved = rt::enter_prepared(e.labels.prepared());
        entered.push(e);
    }
}
