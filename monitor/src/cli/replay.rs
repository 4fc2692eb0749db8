//! `monitor replay`: recorded events against rules, offline.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};

use super::run::{RulesArgs, alerter, load_rules};
use crate::config::OutputFormat;
use crate::event::FieldContext;
use crate::event::replay::event_from_json;

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Events recorded with `monitor events --json` (`-` for stdin).
    pub file: PathBuf,
    #[command(flatten)]
    pub rules: RulesArgs,
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Evaluate the events this many times and print evaluation throughput on stderr
    /// (alerts are written for the first pass only).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let config = args.rules.config()?;
    let ruleset = load_rules(&config)?;
    let reader: Box<dyn std::io::BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        ))
    };
    let mut events = Vec::new();
    let mut unreadable = 0u64;
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match event_from_json(&line) {
            Ok(ev) => events.push(ev),
            Err(e) => {
                if unreadable == 0 {
                    eprintln!(
                        "monitor: {}:{}: skipped: {e} (further ones are only counted)",
                        args.file.display(),
                        n + 1
                    );
                }
                unreadable += 1;
            }
        }
    }
    // Rate limits are about live floods; a replay shows every alert.
    let mut config = config;
    config.rate_limit.per_second = 0.0;
    let mut alerter = alerter(&config, ruleset, args.format);
    let cx = FieldContext::default();
    let mut out = Vec::new();
    let mut stdout = std::io::stdout().lock();
    let started = Instant::now();
    for pass in 0..args.repeat.max(1) {
        for ev in &events {
            out.clear();
            alerter.process(ev, &cx, &mut out);
            if pass == 0 {
                stdout.write_all(&out)?;
            }
        }
    }
    let elapsed = started.elapsed();
    stdout.flush()?;
    let s = alerter.stats;
    eprintln!(
        "monitor: replayed {} events x{} ({unreadable} unreadable lines skipped); {}; {:.0} events/s, {:.0} rule evaluations/s",
        events.len(),
        args.repeat.max(1),
        alerter.report(),
        (events.len() as f64 * f64::from(args.repeat.max(1))) / elapsed.as_secs_f64(),
        s.evaluations as f64 / elapsed.as_secs_f64(),
    );
    Ok(())
}
