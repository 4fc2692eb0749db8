//! `monitor events`'s pipeline: every enriched event, as a JSON object keyed by field names or
//! as a line of text.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Result;

use super::{OutputTarget, PipelineOptions, Stage};
use crate::event::{Event, FieldContext, JsonRenderer};
use crate::sensor::filter::FilterPlan;

pub struct EventStream {
    json: bool,
    renderer: JsonRenderer,
    filter: Option<Arc<FilterPlan>>,
}

impl Stage for EventStream {
    fn on_event(&mut self, ev: &Event, cx: &FieldContext, out: &mut Vec<u8>) -> u64 {
        if self.json {
            self.renderer.write(ev, cx, out);
            out.push(b'\n');
        } else {
            // Writing into a Vec cannot fail.
            let _ = writeln!(out, "{}", ev.to_text());
        }
        1
    }

    fn report(&self, written: u64) -> String {
        format!("{written} written")
    }

    fn filter(&self) -> Option<Arc<FilterPlan>> {
        self.filter.clone()
    }
}

/// Streams every event the sensors report (or what `filter` lets through) to stdout.
pub async fn run(json: bool, filter: Option<Arc<FilterPlan>>, opts: PipelineOptions) -> Result<()> {
    let opts = PipelineOptions { output: OutputTarget::Stdout, ..opts };
    super::run(&opts, &mut EventStream { json, renderer: JsonRenderer::default(), filter }).await
}
