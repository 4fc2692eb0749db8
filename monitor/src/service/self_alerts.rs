//! Alerts about the monitor itself, in Falco's alert shape (source "internal") and through the
//! same sinks as every alert: a SIEM learns when a node's monitor started, stopped (and when the
//! previous run ended, cleanly or not), that it is alive while the node is quiet, and that the
//! kernel dropped events so detections may be missing.
//!
//! They bypass `min_priority` and the per-rule rate limit: they are about the monitor, not the
//! node, and "Events dropped" has its own interval.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::alert::{Alert, output_line, rfc3339_ns};

use crate::config::SelfAlertsConfig;
use crate::sensor::KernelDrops;

pub const STARTED: &str = "Monitor started";
pub const STOPPED: &str = "Monitor stopped";
pub const HEARTBEAT: &str = "Monitor heartbeat";
pub const EVENTS_DROPPED: &str = "Events dropped";

/// How often the lifecycle file records that the daemon is alive: after a crash, the next start
/// reports the previous run ended at most this long after it was last seen. One small file
/// replaced by a rename, no fsync: a kill -9 loses nothing written, only a power cut might.
const ALIVE_EVERY: Duration = Duration::from_secs(2);

/// The lock on `data_dir`, held while the daemon runs: two daemons on one data_dir would
/// overwrite each other's lifecycle record, and the crash of one would read as the other's
/// clean stop. The file holds the holder's pid, for the message the next one gets.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::io::{Read as _, Seek as _, Write as _};
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create data_dir {}: {e}", dir.display()))?;
    let path = dir.join("lock");
    match crate::output::lock_exclusive(&path) {
        Ok(mut lock) => {
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = write!(lock, "{}", std::process::id());
            Ok(lock)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let mut holder = String::new();
            let _ = std::fs::File::open(&path).and_then(|mut f| f.read_to_string(&mut holder));
            anyhow::bail!(
                "data_dir {} is in use by another monitor process (pid {}): give each daemon its own data_dir",
                dir.display(),
                if holder.trim().is_empty() { "unknown" } else { holder.trim() }
            )
        }
        Err(e) => anyhow::bail!("cannot lock data_dir {}: {e}", path.display()),
    }
}

/// What the daemon has done so far, for the alerts' fields.
pub struct Status<'a> {
    pub events: u64,
    pub drops: &'a KernelDrops,
    pub alerts: u64,
    pub rules_digest: &'a str,
    pub rules_enabled: usize,
}

/// The record in data_dir that outlives the process.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct Lifecycle {
    pid: u32,
    started: String,
    /// Last time the daemon was known to be running.
    alive: String,
    /// When it stopped cleanly; None while running or after a crash.
    stopped: Option<String>,
}

pub struct SelfAlerts {
    config: SelfAlertsConfig,
    hostname: String,
    file: Option<PathBuf>,
    record: Lifecycle,
    previous: Option<Lifecycle>,
    started: Instant,
    last_heartbeat: Instant,
    last_alive_write: Instant,
    last_drop_alert: Option<Instant>,
    /// Kernel drops already reported in an alert.
    drops_reported: u64,
    counts: Vec<(&'static str, u64)>,
}

fn now_rfc3339() -> String {
    rfc3339_ns(jiff::Timestamp::now().as_nanosecond())
}

impl SelfAlerts {
    /// Reads what the previous run left in `data_dir` and records this one.
    pub fn new(config: SelfAlertsConfig, data_dir: &Path, hostname: String) -> Self {
        let file = data_dir.join("lifecycle.json");
        let previous = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice::<Lifecycle>(&b).ok());
        let now = now_rfc3339();
        let record = Lifecycle { pid: std::process::id(), started: now.clone(), alive: now, stopped: None };
        let mut me = Self {
            config,
            hostname,
            file: Some(file),
            record,
            previous,
            started: Instant::now(),
            last_heartbeat: Instant::now(),
            last_alive_write: Instant::now(),
            last_drop_alert: None,
            drops_reported: 0,
            counts: [STARTED, STOPPED, HEARTBEAT, EVENTS_DROPPED].iter().map(|r| (*r, 0)).collect(),
        };
        if let Err(e) = std::fs::create_dir_all(data_dir).and_then(|()| me.save()) {
            tracing::warn!(
                "cannot record the daemon's start in {}: {e}; the next start cannot tell when this run ended",
                data_dir.display()
            );
            me.file = None;
        }
        me
    }

    pub fn set_config(&mut self, config: SelfAlertsConfig) {
        self.config = config;
    }

    /// How many alerts of each self-alert rule were raised.
    pub fn counts(&self) -> &[(&'static str, u64)] {
        &self.counts
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&self.record).unwrap_or_default())?;
        std::fs::rename(&tmp, file)
    }

    fn emit(
        &mut self,
        rule: &'static str,
        priority: &'static str,
        text: &str,
        mut fields: Map<String, Value>,
        out: &mut Vec<u8>,
    ) -> u64 {
        let time = now_rfc3339();
        fields.insert("monitor.version".into(), env!("CARGO_PKG_VERSION").into());
        fields.insert("monitor.pid".into(), std::process::id().into());
        fields.insert("evt.time".into(), time.clone().into());
        let alert = Alert {
            hostname: self.hostname.clone(),
            output: output_line(&time, priority, text),
            output_fields: fields,
            priority,
            rule: rule.to_owned(),
            source: crate::alert::AlertSource::Internal,
            tags: vec!["monitor".to_owned(), "self".to_owned()],
            time,
            suppressed: None,
        };
        alert.write_json(out);
        out.push(b'\n');
        if let Some(c) = self.counts.iter_mut().find(|(r, _)| *r == rule) {
            c.1 += 1;
        }
        1
    }

    /// Uptime and totals, for the text of the heartbeat and the stop.
    fn summary(&self, s: &Status) -> String {
        format!(
            "up {}s, {} events, {} kernel drops, {} alerts",
            self.started.elapsed().as_secs(),
            s.events,
            s.drops.total(),
            s.alerts
        )
    }

    fn status_fields(&self, s: &Status) -> Map<String, Value> {
        let mut f = Map::new();
        f.insert("monitor.uptime_s".into(), self.started.elapsed().as_secs().into());
        f.insert("monitor.events".into(), s.events.into());
        f.insert("monitor.kernel_drops".into(), s.drops.total().into());
        f.insert("monitor.alerts".into(), s.alerts.into());
        f.insert("monitor.rules_digest".into(), s.rules_digest.into());
        f.insert("monitor.rules_enabled".into(), s.rules_enabled.into());
        f
    }

    /// "Monitor started", with how the previous run ended when that is known.
    pub fn started(&mut self, s: &Status, out: &mut Vec<u8>) -> u64 {
        if !self.config.lifecycle {
            return 0;
        }
        let mut f = self.status_fields(s);
        let (priority, previous) = match &self.previous {
            None => ("Notice", "no previous run recorded".to_owned()),
            Some(p) => match &p.stopped {
                Some(at) => {
                    f.insert("monitor.previous_stop".into(), at.clone().into());
                    f.insert("monitor.previous_stop_clean".into(), true.into());
                    ("Notice", format!("previous run stopped at {at}"))
                }
                None => {
                    f.insert("monitor.previous_stop".into(), p.alive.clone().into());
                    f.insert("monitor.previous_stop_clean".into(), false.into());
                    (
                        "Warning",
                        format!(
                            "previous run (pid {}) did not stop cleanly: it was last seen alive at {} (events after that \
                             time were not watched)",
                            p.pid, p.alive
                        ),
                    )
                }
            },
        };
        let text = format!(
            "monitor started (version {}, {} rules enabled, ruleset {}); {previous}",
            env!("CARGO_PKG_VERSION"),
            s.rules_enabled,
            s.rules_digest
        );
        self.emit(STARTED, priority, &text, f, out)
    }

    /// About once a second: the heartbeat, "Events dropped", and the alive record.
    pub fn tick(&mut self, s: &Status, out: &mut Vec<u8>) -> u64 {
        let mut n = 0;
        if self.last_alive_write.elapsed() >= ALIVE_EVERY {
            self.last_alive_write = Instant::now();
            self.record.alive = now_rfc3339();
            if let Err(e) = self.save() {
                tracing::debug!("cannot update the lifecycle record: {e}");
            }
        }
        let interval = self.config.heartbeat_interval_s;
        if interval > 0 && self.last_heartbeat.elapsed() >= Duration::from_secs(interval) {
            self.last_heartbeat = Instant::now();
            let text = format!("monitor is running ({})", self.summary(s));
            let f = self.status_fields(s);
            n += self.emit(HEARTBEAT, "Informational", &text, f, out);
        }
        let interval = self.config.drops_interval_s;
        if interval > 0 && self.last_drop_alert.is_none_or(|t| t.elapsed() >= Duration::from_secs(interval)) {
            n += self.drops(s, out);
        }
        n
    }

    /// "Events dropped" for drops not reported yet.
    fn drops(&mut self, s: &Status, out: &mut Vec<u8>) -> u64 {
        let total = s.drops.total();
        if total <= self.drops_reported {
            return 0;
        }
        let new = total - self.drops_reported;
        self.drops_reported = total;
        self.last_drop_alert = Some(Instant::now());
        let mut f = self.status_fields(s);
        f.insert("monitor.drops".into(), new.into());
        let kinds: Map<String, Value> = s
            .drops
            .per_kind
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| ((*k).to_owned(), (*n).into()))
            .collect();
        f.insert("monitor.drops_by_kind".into(), Value::Object(kinds));
        let text = format!(
            "the kernel dropped {new} events (ring buffer full; {total} since start): detections may have been missed"
        );
        self.emit(EVENTS_DROPPED, "Warning", &text, f, out)
    }

    /// Drops not yet reported, then "Monitor stopped"; records the clean stop.
    pub fn stopped(&mut self, s: &Status, out: &mut Vec<u8>) -> u64 {
        let mut n = if self.config.drops_interval_s > 0 { self.drops(s, out) } else { 0 };
        let at = now_rfc3339();
        self.record.alive = at.clone();
        self.record.stopped = Some(at);
        if let Err(e) = self.save() {
            tracing::warn!("cannot record the clean stop: {e}; the next start will report an unclean one");
        }
        if self.config.lifecycle {
            let f = self.status_fields(s);
            let text = format!("monitor stopping ({})", self.summary(s));
            n += self.emit(STOPPED, "Notice", &text, f, out);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(out: &[u8]) -> Vec<Value> {
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn lifecycle_tells_a_clean_stop_from_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let drops = KernelDrops { per_cpu: vec![0], per_kind: vec![] };
        let s = Status { events: 1, drops: &drops, alerts: 0, rules_digest: "d", rules_enabled: 3 };
        let mut out = Vec::new();
        let mut first = SelfAlerts::new(SelfAlertsConfig::default(), dir.path(), "h".into());
        first.started(&s, &mut out);
        let a = &lines(&out)[0];
        assert_eq!(a["rule"], STARTED);
        assert_eq!(a["source"], "internal");
        assert!(a["output"].as_str().unwrap().contains("no previous run"), "{a}");
        // Dropped without stopping: a crash.
        drop(first);
        out.clear();
        let mut second = SelfAlerts::new(SelfAlertsConfig::default(), dir.path(), "h".into());
        second.started(&s, &mut out);
        let a = &lines(&out)[0];
        assert_eq!(a["priority"], "Warning");
        assert_eq!(a["output_fields"]["monitor.previous_stop_clean"], false);
        out.clear();
        second.stopped(&s, &mut out);
        assert_eq!(lines(&out)[0]["rule"], STOPPED);
        out.clear();
        let mut third = SelfAlerts::new(SelfAlertsConfig::default(), dir.path(), "h".into());
        third.started(&s, &mut out);
        let a = &lines(&out)[0];
        assert_eq!(a["priority"], "Notice");
        assert_eq!(a["output_fields"]["monitor.previous_stop_clean"], true);
    }

    #[test]
    fn drops_are_reported_once_per_interval_and_at_stop() {
        let dir = tempfile::tempdir().unwrap();
        let config = SelfAlertsConfig { lifecycle: false, heartbeat_interval_s: 0, drops_interval_s: 3600 };
        let mut a = SelfAlerts::new(config, dir.path(), "h".into());
        let mut out = Vec::new();
        let status = |d| Status { events: 0, drops: d, alerts: 0, rules_digest: "", rules_enabled: 0 };
        let d1 = KernelDrops { per_cpu: vec![5, 2], per_kind: vec![("open", 7)] };
        assert_eq!(a.tick(&status(&d1), &mut out), 1);
        let alert = &lines(&out)[0];
        assert_eq!(alert["rule"], EVENTS_DROPPED);
        assert_eq!(alert["output_fields"]["monitor.drops"], 7);
        // More drops within the interval wait; the stop reports them.
        let d2 = KernelDrops { per_cpu: vec![9, 2], per_kind: vec![("open", 11)] };
        assert_eq!(a.tick(&status(&d2), &mut out), 0);
        out.clear();
        assert_eq!(a.stopped(&status(&d2), &mut out), 1);
        assert_eq!(lines(&out)[0]["output_fields"]["monitor.drops"], 4);
    }
}
