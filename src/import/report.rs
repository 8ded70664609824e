//! The import report: one line per source channel and key, what happens to
//! it and why, plus the totals. The same text for a dry run and a real run.
//! It never contains an upstream key or a full client key, only the
//! display prefix (`sk-AbCd…`).

use std::fmt::Write;

use super::plan::{Action, Outcome, Plan};

/// Renders `plan` read from `source`; `written` says whether it was applied.
pub fn render(plan: &Plan, source: &str, written: bool) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "source: {source} ({} schema)", plan.flavor.as_str());
    section(&mut text, "channels", &plan.channels, written);
    section(&mut text, "keys", &plan.tokens, written);
    let _ = if written {
        writeln!(text, "applied: {} change(s) written", plan.commands.len())
    } else {
        writeln!(
            text,
            "dry run: nothing written ({} change(s) would be)",
            plan.commands.len()
        )
    };
    text
}

fn section(text: &mut String, title: &str, outcomes: &[Outcome], written: bool) {
    let count = |label: &str| {
        outcomes
            .iter()
            .filter(|outcome| outcome.action.label() == label)
            .count()
    };
    let (created, updated) = if written {
        ("created", "updated")
    } else {
        ("to create", "to update")
    };
    let _ = writeln!(
        text,
        "{title}: {} {created}, {} {updated}, {} unchanged, {} skipped",
        count("create"),
        count("update"),
        count("unchanged"),
        count("skip")
    );
    for outcome in outcomes {
        let _ = write!(
            text,
            "  {:<9} #{} {:?}",
            outcome.action.label(),
            outcome.source_id,
            outcome.name
        );
        let _ = match &outcome.action {
            Action::Skip(reason) => writeln!(text, " ({}): {reason}", outcome.summary),
            _ => writeln!(text, ": {}", outcome.summary),
        };
        for note in &outcome.notes {
            let _ = writeln!(text, "            note: {note}");
        }
    }
}
