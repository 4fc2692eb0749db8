//! Live reload of the rules and config, on SIGHUP or when a watched file changes. The new set is
//! read and compiled on a thread of its own while events go on being evaluated against the old
//! one; only a set without errors is handed to the event loop, which swaps it in between two
//! events. Errors are logged with file:line:column and the old set stays in force.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use notify::Watcher as _;

use super::metrics::Telemetry;
use crate::config::{Config, ConfigSource};
use crate::rules::{Loaded, Ruleset, Severity};
use crate::sensor::filter::FilterPlan;

/// A config and ruleset that loaded without errors, ready to be put in force, with the
/// in-kernel filter compiled from them (off the event path: a large ruleset takes a while).
pub struct Reloaded {
    pub config: Config,
    pub ruleset: Ruleset,
    pub prefilter: Option<Arc<FilterPlan>>,
}

/// The in-kernel filter for a ruleset, unless the config turns filtering off.
pub fn prefilter_for(config: &Config, ruleset: &Ruleset) -> Option<Arc<FilterPlan>> {
    config.kernel_filter.then(|| Arc::new(crate::rules::prefilter::plan(ruleset)))
}

enum Request {
    Signal,
    Changed(PathBuf),
}

pub struct Reloader {
    requests: Sender<Request>,
    results: Receiver<Reloaded>,
}

impl Reloader {
    /// Starts the reload thread, watching the config file and rules paths when `config.reload.watch`.
    pub fn start(
        source: ConfigSource,
        config: Config,
        digest: String,
        telemetry: Arc<Telemetry>,
    ) -> std::io::Result<Self> {
        let (requests, incoming) = std::sync::mpsc::channel();
        let (done, results) = std::sync::mpsc::channel();
        let to_self = requests.clone();
        std::thread::Builder::new().name("monitor-reload".into()).spawn(move || {
            let mut worker =
                Worker { source, config, digest, telemetry, done, watcher: None, watched: BTreeSet::new() };
            worker.watch(to_self);
            worker.serve(&incoming);
        })?;
        Ok(Self { requests, results })
    }

    /// SIGHUP: reload even when nothing seems to have changed.
    pub fn request(&self) {
        let _ = self.requests.send(Request::Signal);
    }

    /// A loaded set, when one is ready.
    pub fn take(&self) -> Option<Reloaded> {
        self.results.try_recv().ok()
    }
}

struct Worker {
    source: ConfigSource,
    /// The config and ruleset digest last loaded (in force, or about to be).
    config: Config,
    digest: String,
    telemetry: Arc<Telemetry>,
    done: Sender<Reloaded>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
}

/// The keys that differ: those a reload puts in force, and those that wait for the next restart
/// because they size or wire what was set up at start (probes, sinks, servers).
fn changed_keys(old: &Config, new: &Config) -> (Vec<&'static str>, Vec<&'static str>) {
    let (o, n) = (&old.container_runtime, &new.container_runtime);
    let keys = [
        ("rules", old.rules != new.rules, true),
        ("rate_limit", old.rate_limit != new.rate_limit, true),
        ("rule_matching", old.rule_matching != new.rule_matching, true),
        ("min_priority", old.min_priority != new.min_priority, true),
        ("kernel_filter", old.kernel_filter != new.kernel_filter, true),
        ("container_runtime.metadata_wait_ms", o.metadata_wait_ms != n.metadata_wait_ms, true),
        ("self_alerts", old.self_alerts != new.self_alerts, true),
        ("output", old.output != new.output, false),
        ("ring_buffer_bytes", old.ring_buffer_bytes != new.ring_buffer_bytes, false),
        ("kernel_filter_sets", old.kernel_filter_sets != new.kernel_filter_sets, false),
        ("max_processes", old.max_processes != new.max_processes, false),
        ("container_runtime", o.docker_sockets != n.docker_sockets || o.cri_sockets != n.cri_sockets, false),
        ("state_dir", old.state_dir != new.state_dir, false),
        ("data_dir", old.data_dir != new.data_dir, false),
        ("metrics", old.metrics != new.metrics, false),
        ("log", old.log != new.log, false),
        ("reload", old.reload != new.reload, false),
    ];
    let (mut live, mut restart) = (Vec::new(), Vec::new());
    for (key, _, is_live) in keys.into_iter().filter(|(_, differs, _)| *differs) {
        if is_live { live.push(key) } else { restart.push(key) }
    }
    (live, restart)
}

/// The directories to watch: the config file's and each rules file's (editors and Kubernetes
/// ConfigMaps replace files by renaming into the directory, which a watch on the file itself
/// would miss), and each rules directory.
fn watch_targets(source: &ConfigSource, config: &Config) -> BTreeSet<PathBuf> {
    let parent = |p: &Path| {
        p.parent().map(|d| if d.as_os_str().is_empty() { PathBuf::from(".") } else { d.to_owned() })
    };
    let rules = config.rule_paths().into_iter().filter(|p| p.as_os_str() != crate::rules::BUNDLED);
    let rule_dirs = rules.map(|p| if p.is_dir() { Some(p) } else { parent(&p) });
    source.file().and_then(|f| parent(&f)).into_iter().chain(rule_dirs.flatten()).collect()
}

impl Worker {
    fn watch(&mut self, to_self: Sender<Request>) {
        if !self.config.reload.watch {
            return;
        }
        let handler = move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && !matches!(ev.kind, notify::EventKind::Access(_))
            {
                let path = ev.paths.into_iter().next().unwrap_or_default();
                let _ = to_self.send(Request::Changed(path));
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => {
                tracing::warn!("cannot watch the rules and config files ({e}): reload with SIGHUP");
                return;
            }
        }
        self.rewatch();
    }

    /// Watches what the current config names; called again after a reload changes it.
    fn rewatch(&mut self) {
        let Some(watcher) = &mut self.watcher else { return };
        let targets = watch_targets(&self.source, &self.config);
        for gone in self.watched.difference(&targets) {
            let _ = watcher.unwatch(gone);
        }
        for dir in targets.difference(&self.watched) {
            match watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => tracing::debug!(dir = %dir.display(), "watching for rule and config changes"),
                Err(e) => tracing::warn!("cannot watch {} ({e}): changes there need SIGHUP", dir.display()),
            }
        }
        self.watched = targets;
    }

    fn serve(&mut self, incoming: &Receiver<Request>) {
        let debounce = Duration::from_millis(self.config.reload.debounce_ms);
        while let Ok(first) = incoming.recv() {
            let mut signalled = matches!(first, Request::Signal);
            let mut changed = match first {
                Request::Changed(p) => vec![p],
                Request::Signal => Vec::new(),
            };
            // Files are written in several steps: wait for a quiet moment, then load once.
            loop {
                match incoming.recv_timeout(debounce) {
                    Ok(Request::Signal) => signalled = true,
                    Ok(Request::Changed(p)) => changed.push(p),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            changed.sort();
            changed.dedup();
            let why = if signalled {
                "SIGHUP".to_owned()
            } else {
                format!(
                    "changed: {}",
                    changed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                )
            };
            self.reload(&why, signalled);
        }
    }

    fn reload(&mut self, why: &str, forced: bool) {
        let config = match self.source.load() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload ({why}) failed, the rules and config in force stay: {e:#}");
                self.telemetry.reload_failed();
                return;
            }
        };
        let Loaded { ruleset, diagnostics } = Ruleset::load(&config.rule_paths());
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
        if !errors.is_empty() {
            for d in &errors {
                tracing::error!("{}", d.render());
            }
            tracing::error!(
                "reload ({why}) failed: {} error(s) in the rules; the rules in force stay (ruleset {})",
                errors.len(),
                self.digest
            );
            self.telemetry.reload_failed();
            return;
        }
        if !forced && ruleset.digest == self.digest && config == self.config {
            tracing::debug!("reload ({why}): rules and config unchanged");
            return;
        }
        for d in diagnostics.iter().filter(|d| d.severity == Severity::Warning) {
            tracing::warn!("{}", d.headline());
        }
        let (live, restart) = changed_keys(&self.config, &config);
        if !restart.is_empty() {
            tracing::warn!(
                "reload ({why}): {} changed; that takes effect at the next restart (the probes, sinks and servers \
                 set up at start stay as they are)",
                restart.join(", ")
            );
        }
        tracing::info!(
            enabled = ruleset.enabled_count(),
            skipped = ruleset.skipped.len(),
            from = %self.digest,
            to = %ruleset.digest,
            changed = %live.join(", "),
            "reload ({why}): new rules and config loaded"
        );
        self.digest = ruleset.digest.clone();
        let rules_changed = self.config.rules != config.rules;
        self.config = config.clone();
        if rules_changed {
            self.rewatch();
        }
        let prefilter = prefilter_for(&config, &ruleset);
        let _ = self.done.send(Reloaded { config, ruleset, prefilter });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_keys_are_named() {
        let old = Config::default();
        let mut new = Config::default();
        new.ring_buffer_bytes *= 2;
        new.rate_limit.burst = 1.0;
        assert_eq!(changed_keys(&old, &new), (vec!["rate_limit"], vec!["ring_buffer_bytes"]));
    }

    #[test]
    fn watches_directories_of_files_and_rules_directories() {
        let dir = tempfile::tempdir().unwrap();
        let rules_dir = dir.path().join("rules.d");
        std::fs::create_dir(&rules_dir).unwrap();
        let config = Config {
            rules: Some(vec![PathBuf::from("bundled"), dir.path().join("a.yaml"), rules_dir.clone()]),
            ..Config::default()
        };
        let source = ConfigSource {
            path: Some(PathBuf::from("/etc/monitor/monitor.yaml")),
            ..ConfigSource::default()
        };
        let t = watch_targets(&source, &config);
        assert_eq!(t, BTreeSet::from([PathBuf::from("/etc/monitor"), dir.path().to_owned(), rules_dir]));
    }
}
