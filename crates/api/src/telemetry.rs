//! Logs: one line per event, `RUST_LOG` filtering, no colour codes unless on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// rmcp logs every JSON-RPC message it receives and sends, whole, at debug level: tool
/// arguments and results carry acceptance tokens (SPEC §12: secrets never reach logs), so its
/// message logging is capped at info whatever `RUST_LOG` says.
const SECRET_BEARING: &[&str] = &["rmcp::service=info", "rmcp::transport=info"];

pub fn init(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in SECRET_BEARING {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    // A second init (tests booting several apps) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
