//! Captures `tracing` events in-process, so tests can assert on structured
//! log events. One global subscriber is installed per test binary; it keeps
//! only the events tests look for (`affinity_fallthrough`, and warnings),
//! and tests pick theirs out by request id or message.

use std::collections::BTreeMap;
use std::sync::{Mutex, Once};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One recorded event: its level and every field, `message` included.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub level: Level,
    pub fields: BTreeMap<String, String>,
}

impl Captured {
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

static EVENTS: Mutex<Vec<Captured>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// Installs the capturing subscriber (once per binary).
pub(crate) fn capture() {
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Recorder);
        // Another test may have installed one first; then events still flow
        // to it and `events()` stays empty, which the asserting test reports.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Every captured event matching `keep`.
pub(crate) fn events(keep: impl Fn(&Captured) -> bool) -> Vec<Captured> {
    let events = EVENTS.lock().unwrap_or_else(|poison| poison.into_inner());
    events.iter().filter(|event| keep(event)).cloned().collect()
}

struct Recorder;

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut fields = FieldMap::default();
        event.record(&mut fields);
        let wanted = *event.metadata().level() <= Level::WARN
            || fields.0.get("message").map(String::as_str) == Some("affinity_fallthrough");
        if wanted {
            let captured = Captured {
                level: *event.metadata().level(),
                fields: fields.0,
            };
            EVENTS
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .push(captured);
        }
    }
}

#[derive(Default)]
struct FieldMap(BTreeMap<String, String>);

impl Visit for FieldMap {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}
