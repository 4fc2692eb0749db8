//! `monitor replay`: recorded events against rules, offline.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};

use super::run::{RulesArgs, load_rules};
use crate::config::OutputFormat;
use crate::event::FieldContext;
use crate::event::replay::event_from_json;
use crate::pipeline::daemon::alerter;

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
    /// Deliver the alerts (of every pass) through the config's `output.sinks`, as the daemon
    /// would, and wait until they are delivered (up to output.shutdown_timeout_ms): to try a
    /// SIEM pipeline with recorded events.
    #[arg(long)]
    pub to_sinks: bool,
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
    let router =
        if args.to_sinks { Some(crate::output::Router::start(&config.output, args.format)?) } else { None };
    let format = if router.is_some() { Some(OutputFormat::Json) } else { args.format };
    let mut alerter = alerter(&config, ruleset, format);
    let cx = FieldContext::default();
    let mut out = Vec::new();
    // Locked only without sinks: the stdout sink writes it otherwise.
    let mut stdout = router.is_none().then(|| std::io::stdout().lock());
    let started = Instant::now();
    for pass in 0..args.repeat.max(1) {
        for ev in &events {
            match &router {
                Some(r) => {
                    alerter.process(ev, &cx, &mut out);
                    // Handed over in batches, as the daemon's event loop does.
                    if out.len() >= 256 << 10 {
                        r.dispatch(&out);
                        out.clear();
                    }
                }
                None => {
                    out.clear();
                    alerter.process(ev, &cx, &mut out);
                    if pass == 0
                        && let Some(stdout) = stdout.as_mut()
                    {
                        stdout.write_all(&out)?;
                    }
                }
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(stdout) = stdout.as_mut() {
        stdout.flush()?;
    }
    if let Some(r) = &router {
        r.dispatch(&out);
        r.shutdown();
        let delivered: u64 = r.report().iter().map(|s| s.stats.sent).min().unwrap_or(0);
        eprintln!(
            "monitor: {}; delivered in {:.3} s ({:.0} alerts/s by the slowest sink)",
            r.summary(),
            started.elapsed().as_secs_f64(),
            delivered as f64 / started.elapsed().as_secs_f64()
        );
    }
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
