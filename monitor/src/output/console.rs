//! The stdout sink: JSON lines (Falco's shape) or text, for journald, `kubectl logs` and
//! falcosidekick reading a pipe.

use tokio::io::AsyncWriteExt as _;

use super::{AlertView, Progress, Record, Sink};
use crate::config::OutputFormat;

pub struct StdoutSink {
    format: OutputFormat,
    out: tokio::io::Stdout,
    buf: Vec<u8>,
}

impl StdoutSink {
    pub fn new(format: OutputFormat) -> Self {
        Self { format, out: tokio::io::stdout(), buf: Vec::new() }
    }
}

/// Appends `batch` as lines in `format` (shared with the file sink).
pub fn render_lines(format: OutputFormat, batch: &[Record], buf: &mut Vec<u8>) {
    for r in batch {
        match format {
            OutputFormat::Json => buf.extend_from_slice(&r.data),
            OutputFormat::Text => AlertView::parse(&r.data).text_line(buf),
        }
        buf.push(b'\n');
    }
}

impl Sink for StdoutSink {
    async fn deliver(&mut self, batch: &[Record]) -> anyhow::Result<Progress> {
        self.buf.clear();
        render_lines(self.format, batch, &mut self.buf);
        self.out.write_all(&self.buf).await?;
        self.out.flush().await?;
        Ok(Progress::all(batch.len()))
    }
}
