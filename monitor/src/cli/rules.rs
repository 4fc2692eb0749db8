//! `monitor rules check|list|fields`: validate rules and see what loads, without a kernel.

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::run::RulesArgs;
use crate::rules::{Loaded, Ruleset, Severity};

#[derive(clap::Subcommand, Debug)]
pub enum RulesCommand {
    /// Validate rules files; exits non-zero on any error (skipped rules are warnings).
    Check(PathsArgs),
    /// Print the loaded rules with their event types, and the skipped ones with the reason.
    List(ListArgs),
    /// Print every field rules and outputs can use.
    Fields,
}

#[derive(clap::Args, Debug)]
pub struct PathsArgs {
    /// Rules files or directories, in load order (default: the config's rules).
    pub paths: Vec<PathBuf>,
    #[arg(long, env = "MONITOR_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub paths: PathsArgs,
    /// One JSON object per rule.
    #[arg(long)]
    pub json: bool,
}

fn load(args: &PathsArgs) -> Result<Loaded> {
    let config =
        RulesArgs { config: args.config.clone(), rules: args.paths.clone(), set: Vec::new() }.config()?;
    Ok(Ruleset::load(&config.rule_paths()))
}

pub fn run(cmd: RulesCommand) -> Result<()> {
    match cmd {
        RulesCommand::Check(args) => {
            let loaded = load(&args)?;
            let mut errors = 0;
            let mut warnings = 0;
            for d in &loaded.diagnostics {
                match d.severity {
                    Severity::Error => {
                        errors += 1;
                        eprintln!("{}\n", d.render());
                    }
                    Severity::Warning => {
                        warnings += 1;
                        eprintln!("warning: {}", d.headline());
                    }
                }
            }
            let r = &loaded.ruleset;
            println!(
                "{} rules loaded ({} enabled, {} disabled), {} skipped, {errors} errors, {warnings} warnings",
                r.rules.len(),
                r.enabled_count(),
                r.rules.len() - r.enabled_count(),
                r.skipped.len()
            );
            if errors > 0 {
                bail!("{errors} error(s) in the rules");
            }
            Ok(())
        }
        RulesCommand::List(args) => {
            let loaded = load(&args.paths)?;
            for d in loaded.errors() {
                eprintln!("{}\n", d.render());
            }
            let r = &loaded.ruleset;
            for rule in &r.rules {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "rule": rule.name, "status": if rule.enabled { "enabled" } else { "disabled" },
                            "priority": rule.priority.as_str(), "event_types": rule.types.iter().map(|t| t.name()).collect::<Vec<_>>(),
                            "tags": rule.tags, "location": rule.span.to_string(),
                        })
                    );
                } else {
                    println!(
                        "{:<9} {:<13} {:<60} {}",
                        if rule.enabled { "enabled" } else { "disabled" },
                        rule.priority.as_str(),
                        rule.name,
                        rule.types
                    );
                }
            }
            for s in &r.skipped {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({"rule": s.name, "status": "skipped", "reason": s.reason, "location": s.span.to_string()})
                    );
                } else {
                    println!("{:<9} {:<13} {:<60} {} ({})", "skipped", "", s.name, s.reason, s.span);
                }
            }
            if loaded.has_errors() {
                bail!("the rules have errors; run `monitor rules check`");
            }
            Ok(())
        }
        RulesCommand::Fields => {
            for (name, def) in crate::event::fields::listing() {
                println!("{name:<32} {:<8} {}", def.ty.name(), def.doc);
            }
            Ok(())
        }
    }
}
