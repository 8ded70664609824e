//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! `# HELP` and `# TYPE` once per metric, then one line per series, label
//! values escaped. Pure string building; it knows nothing of the gateway.

use std::fmt::Write;

use super::series::HistogramView;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a metric is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A scrape's text, metric by metric.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a metric: its `# HELP` and `# TYPE` lines.
    pub fn header(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels);
        self.text.push(' ');
        self.text.push_str(&format_value(value));
        self.text.push('\n');
    }

    /// An integer sample, written exactly.
    pub fn count(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels);
        let _ = writeln!(self.text, " {value}");
    }

    /// A histogram's `_bucket` (cumulative, ending with `le="+Inf"`), `_sum`
    /// and `_count` samples.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], view: &HistogramView) {
        let bucket = format!("{name}_bucket");
        for (bound, count) in &view.cumulative {
            let le = format_value(*bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", le.as_str()));
            self.count(&bucket, &with_le, *count);
        }
        self.sample(&format!("{name}_sum"), labels, view.sum_seconds);
        self.count(&format!("{name}_count"), labels, view.count);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(text: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    text.push('{');
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(name);
        text.push_str("=\"");
        escape_label_value(text, value);
        text.push('"');
    }
    text.push('}');
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(text: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '\\' => text.push_str("\\\\"),
            '"' => text.push_str("\\\""),
            '\n' => text.push_str("\\n"),
            other => text.push(other),
        }
    }
}

/// Go's float formatting as Prometheus reads it: `+Inf`, `-Inf`, `NaN`, or
/// the shortest decimal that round-trips.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backslashes, quotes and newlines in label values are escaped; HELP
    /// escapes backslashes and newlines.
    #[test]
    fn labels_and_help_are_escaped() {
        let mut exposition = Exposition::default();
        exposition.header("sluicegate_x_total", Kind::Counter, "a \\ b\nc");
        exposition.count("sluicegate_x_total", &[("model", "a\"b\\c\nd")], 3);
        exposition.count("sluicegate_y", &[], 0);
        assert_eq!(
            exposition.finish(),
            "# HELP sluicegate_x_total a \\\\ b\\nc\n\
             # TYPE sluicegate_x_total counter\n\
             sluicegate_x_total{model=\"a\\\"b\\\\c\\nd\"} 3\n\
             sluicegate_y 0\n"
        );
    }

    #[test]
    fn values_use_prometheus_spellings() {
        let cases = [
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.005, "0.005"),
            (300.0, "300"),
            (1.5, "1.5"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_value(value), expected);
        }
    }
}
