//! What vigil says on stderr while it works — progress, warnings, errors —
//! as tracing events: text lines for people (`vigil: warning: …`) or JSON
//! lines for machines (`--log-format json`). Every line goes through
//! [`redact`](crate::redact::redact) on its way out, whatever put it
//! there, so a secret that reaches a message never reaches the terminal or
//! a log collector.

use std::io::Write;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// `vigil: message key=value`, for people.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, message, fields.
    Json,
}

/// One log line, buffered, redacted and written to stderr when dropped
/// (the formatter drops it after each event).
pub(crate) struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = crate::redact::redact(&String::from_utf8_lossy(&self.0));
        // Untrusted text (target names, container output, imported ids)
        // reaches messages: no escape sequence reaches the terminal.
        let text = crate::safeio::printable_block(&text);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// Hands the formatter one [`Line`] per event.
pub(crate) struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// `vigil: [warning: |error: ]message` (structured fields go to JSON only:
/// the text message already says what they say).
struct Human;

/// Collects the `message` field of an event.
struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        // Libraries (kube logs "failed with error client error (Connect)")
        // say less than the error vigil reports for the same failure, with
        // its context: on a terminal, only vigil speaks. JSON logs keep them.
        if !event.metadata().target().starts_with("vigil") {
            return Ok(());
        }
        let prefix = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        let _ = ctx;
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        writeln!(writer, "vigil: {prefix}{message}")
    }
}

/// The format chosen at start-up (text until [`init`] says otherwise).
static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Returns true if and only if stderr carries JSON lines: then everything
/// vigil says there (diagnostics included) must be one JSON object a line.
pub(crate) fn is_json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// Install the global subscriber (once; later calls do nothing).
pub(crate) fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let builder = tracing_subscriber::fmt()
        .with_writer(RedactingStderr)
        .with_max_level(Level::INFO);
    let _ = match format {
        LogFormat::Text => builder.event_format(Human).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
