//! What /metrics reports. The event loop keeps plain counters (no atomics or locks per event)
//! and publishes a snapshot here about once a second; sinks and the container directory are
//! read at scrape time. Names follow Prometheus conventions: `monitor_*`, counters end in
//! `_total`, and the standard `process_*` metrics describe the daemon's own CPU and memory.

use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::health::Health;
use crate::container::ContainerDirectory;
use crate::output::Router;
use crate::sensor::KernelDrops;

/// The event loop's counters, as last published.
#[derive(Clone, Debug, Default)]
pub struct PipelineMetrics {
    /// Events read, per event type.
    pub events: Vec<(monitor_common::EventType, u64)>,
    pub decode_errors: u64,
    pub kernel_drops: KernelDrops,
    /// Events the in-kernel filters dismissed (no loaded rule could match them), per kind.
    pub kernel_filtered: crate::sensor::filter::FilteredCounts,
    /// Directory verdicts written for the kernel's open filter.
    pub directory_verdicts: u64,
    /// The kernel filter's sets too small for the rules in force (the filter passes what they
    /// would have dismissed).
    pub kernel_filter_widened: Vec<crate::sensor::filter::FilterSet>,
    pub processes: usize,
    pub process_evictions: u64,
    pub cgroups: usize,
    pub cgroups_unresolved: u64,
    pub io_uring: crate::event::CompletionStats,
}

/// One rule's counters, summed over every ruleset that had a rule of that name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleCounters {
    pub priority: &'static str,
    pub evaluations: u64,
    pub matches: u64,
    pub alerts: u64,
    pub suppressed: u64,
}

#[derive(Clone, Debug, Default)]
pub struct RuleMetrics {
    /// The loaded ruleset's digest.
    pub digest: String,
    pub enabled: usize,
    /// By rule name, in load order; rules a reload removed keep their last counts.
    pub rules: Vec<(String, RuleCounters)>,
    /// "Monitor started", "Events dropped", ...: alerts the monitor raised about itself.
    pub self_alerts: Vec<(&'static str, u64)>,
}

#[derive(Clone, Debug, Default)]
pub struct ReloadMetrics {
    pub succeeded: u64,
    pub failed: u64,
    /// Unix time of the last successful reload (or of the start), and of the last failure.
    pub last_success: f64,
    pub last_failure: f64,
}

/// Shared between the event loop (writer) and the metrics server (reader).
pub struct Telemetry {
    pub health: Health,
    pipeline: Mutex<PipelineMetrics>,
    rules: Mutex<RuleMetrics>,
    reloads: Mutex<ReloadMetrics>,
    router: Option<Arc<Router>>,
    containers: Option<ContainerDirectory>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain counters: still worth reporting.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Telemetry {
    pub fn new(health: Health, router: Option<Arc<Router>>, containers: Option<ContainerDirectory>) -> Self {
        Self {
            health,
            pipeline: Mutex::default(),
            rules: Mutex::default(),
            reloads: Mutex::new(ReloadMetrics { last_success: unix_now(), ..Default::default() }),
            router,
            containers,
        }
    }

    pub fn publish_pipeline(&self, m: PipelineMetrics) {
        *lock(&self.pipeline) = m;
    }

    pub fn publish_rules(&self, m: RuleMetrics) {
        *lock(&self.rules) = m;
    }

    pub fn reload_succeeded(&self) {
        let mut r = lock(&self.reloads);
        r.succeeded += 1;
        r.last_success = unix_now();
    }

    pub fn reload_failed(&self) {
        let mut r = lock(&self.reloads);
        r.failed += 1;
        r.last_failure = unix_now();
    }

    /// The Prometheus text exposition (OpenMetrics 1.0).
    pub fn render(self: &Arc<Self>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition(self.clone())));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[derive(Debug)]
struct Exposition(Arc<Telemetry>);

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One metric family: a descriptor, then one sample per label set.
fn family<'l, V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'l>, V)>,
    encode: impl Fn(V, prometheus_client::encoding::MetricEncoder) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut samples: Vec<_> = samples.into_iter().collect();
    let mut m = enc.encode_descriptor(name, help, unit, kind)?;
    if let [(labels, _)] = samples.as_slice()
        && labels.is_empty()
    {
        // `name value`, not `name{} value`.
        let (_, v) = samples.pop().expect("one sample");
        return encode(v, m);
    }
    for (labels, v) in samples {
        encode(v, m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters<'l>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'l>, u64)>,
) -> std::fmt::Result {
    family(enc, name, help, None, MetricType::Counter, samples, |v, m| ConstCounter::new(v).encode(m))
}

fn gauges<'l, N: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'l>, N)>,
) -> std::fmt::Result {
    family(enc, name, help, None, MetricType::Gauge, samples, |v, m| ConstGauge::new(v).encode(m))
}

fn info(enc: &mut DescriptorEncoder, name: &str, help: &str, labels: &[(&str, &str)]) -> std::fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Info)?.encode_info(&labels)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    counters(enc, name, help, [(Vec::new(), v)])
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: N,
) -> std::fmt::Result {
    gauges(enc, name, help, [(Vec::new(), v)])
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let t = &self.0;
        let healthy = t.health.check().is_ok();
        gauge(
            &mut enc,
            "monitor_healthy",
            "1 when the probes are attached and the ring buffer is being drained",
            i64::from(healthy),
        )?;
        info(&mut enc, "monitor_build", "The monitor's version", &[("version", env!("CARGO_PKG_VERSION"))])?;

        let p = lock(&t.pipeline).clone();
        counters(
            &mut enc,
            "monitor_events",
            "Events read from the kernel, per event type",
            p.events.iter().map(|(ty, n)| (vec![("type", ty.name())], *n)),
        )?;
        let cpus: Vec<String> = (0..p.kernel_drops.per_cpu.len()).map(|c| c.to_string()).collect();
        counters(
            &mut enc,
            "monitor_kernel_drops",
            "Events the kernel could not queue (ring buffer full), per CPU",
            p.kernel_drops.per_cpu.iter().zip(&cpus).map(|(n, cpu)| (vec![("cpu", cpu.as_str())], *n)),
        )?;
        counters(
            &mut enc,
            "monitor_kernel_drops_by_kind",
            "Events the kernel could not queue, per event kind",
            p.kernel_drops.per_kind.iter().map(|(kind, n)| (vec![("kind", *kind)], *n)),
        )?;
        counters(
            &mut enc,
            "monitor_kernel_filtered",
            "Events the in-kernel filters dismissed because no loaded rule could match them, per kind",
            p.kernel_filtered.per_kind().into_iter().map(|(kind, n)| (vec![("kind", kind)], n)),
        )?;
        counter(
            &mut enc,
            "monitor_directory_verdicts",
            "Directory verdicts written for the kernel's open filter",
            p.directory_verdicts,
        )?;
        gauges(
            &mut enc,
            "monitor_kernel_filter_widened",
            "1 when the rules need more entries in this in-kernel filter set than it holds \
             (kernel_filter_sets), so the filter passes what the set would have dismissed",
            crate::sensor::filter::FilterSet::ALL
                .iter()
                .map(|set| (vec![("set", set.name())], i64::from(p.kernel_filter_widened.contains(set)))),
        )?;
        counter(
            &mut enc,
            "monitor_decode_errors",
            "Ring buffer records that could not be decoded",
            p.decode_errors,
        )?;
        gauge(
            &mut enc,
            "monitor_process_table_entries",
            "Processes in the process table (live and recently exited)",
            p.processes as i64,
        )?;
        counter(
            &mut enc,
            "monitor_process_table_evictions",
            "Processes evicted from a full process table",
            p.process_evictions,
        )?;
        gauge(
            &mut enc,
            "monitor_cgroup_cache_entries",
            "Cgroups whose container is known",
            p.cgroups as i64,
        )?;
        counter(
            &mut enc,
            "monitor_cgroup_unresolved",
            "Cgroup ids that could not be resolved to a path",
            p.cgroups_unresolved,
        )?;
        counter(
            &mut enc,
            "monitor_io_uring_results_unknown",
            "io_uring events reported without their result (its completion came late or never)",
            p.io_uring.unanswered,
        )?;
        counter(
            &mut enc,
            "monitor_io_uring_late_completions",
            "io_uring completions whose submission had been reported already",
            p.io_uring.late,
        )?;

        if let Some(dir) = &t.containers {
            let c = dir.stats();
            gauges(
                &mut enc,
                "monitor_container_cache_entries",
                "Containers in the metadata cache, by state",
                [
                    (vec![("state", "known")], c.known as i64),
                    (vec![("state", "pending")], c.pending as i64),
                    (vec![("state", "unknown")], c.failed as i64),
                ],
            )?;
            counter(
                &mut enc,
                "monitor_container_lookups",
                "Container metadata lookups at the runtimes",
                c.lookups,
            )?;
            counter(
                &mut enc,
                "monitor_container_lookup_failures",
                "Container metadata lookups that failed",
                c.lookup_failures,
            )?;
        }

        let r = lock(&t.rules).clone();
        info(
            &mut enc,
            "monitor_ruleset",
            "The loaded ruleset (digest of its sources)",
            &[("digest", r.digest.as_str())],
        )?;
        gauge(&mut enc, "monitor_rules_enabled", "Enabled rules in the loaded ruleset", r.enabled as i64)?;
        let per_rule = |f: fn(&RuleCounters) -> u64| {
            r.rules.iter().map(move |(name, c)| (vec![("rule", name.as_str())], f(c)))
        };
        counters(
            &mut enc,
            "monitor_rule_evaluations",
            "Evaluations of each rule (one per event of a type the rule can match)",
            per_rule(|c| c.evaluations),
        )?;
        counters(&mut enc, "monitor_rule_matches", "Events each rule matched", per_rule(|c| c.matches))?;
        counters(
            &mut enc,
            "monitor_alerts",
            "Alerts raised, per rule and priority",
            r.rules
                .iter()
                .map(|(name, c)| (vec![("rule", name.as_str()), ("priority", c.priority)], c.alerts)),
        )?;
        counters(
            &mut enc,
            "monitor_alerts_suppressed",
            "Alerts the per-rule rate limit held back",
            per_rule(|c| c.suppressed),
        )?;
        counters(
            &mut enc,
            "monitor_self_alerts",
            "Alerts the monitor raised about itself",
            r.self_alerts.iter().map(|(rule, n)| (vec![("rule", *rule)], *n)),
        )?;

        let rl = lock(&t.reloads).clone();
        counters(
            &mut enc,
            "monitor_rule_reloads",
            "Reloads of the rules and config (SIGHUP or a changed file), by result",
            [(vec![("result", "success")], rl.succeeded), (vec![("result", "failure")], rl.failed)],
        )?;
        gauge(
            &mut enc,
            "monitor_rule_reload_last_success_timestamp_seconds",
            "When the ruleset in force was loaded",
            rl.last_success,
        )?;
        if rl.failed > 0 {
            gauge(
                &mut enc,
                "monitor_rule_reload_last_failure_timestamp_seconds",
                "When a reload last failed",
                rl.last_failure,
            )?;
        }

        if let Some(router) = &t.router {
            let sinks = router.report();
            let labels = |s: &crate::output::RouterReport| -> Vec<(&'static str, String)> {
                vec![("sink", s.name.clone()), ("kind", s.kind.to_owned())]
            };
            let owned: Vec<Vec<(&'static str, String)>> = sinks.iter().map(labels).collect();
            let view = |i: usize| -> Labels<'_> { owned[i].iter().map(|(k, v)| (*k, v.as_str())).collect() };
            type Stat = fn(&crate::output::RouterReport) -> u64;
            let stats: [(&str, &str, Stat); 9] = [
                ("monitor_sink_accepted", "Alerts a sink took into its queue", |s| s.stats.accepted),
                ("monitor_sink_sent", "Alerts a sink's receiver acknowledged (or that were written)", |s| {
                    s.stats.sent
                }),
                ("monitor_sink_failed_attempts", "Delivery attempts that failed (each is retried)", |s| {
                    s.stats.failed
                }),
                ("monitor_sink_retried", "Alerts sent again after a failed attempt", |s| s.stats.retried),
                ("monitor_sink_spooled", "Alerts written to a sink's disk spool", |s| s.stats.spooled),
                (
                    "monitor_sink_dropped",
                    "Alerts a sink lost (full queue or spool, shutdown deadline)",
                    |s| s.stats.dropped,
                ),
                ("monitor_sink_rejected", "Alerts a receiver refused for good (e.g. HTTP 400)", |s| {
                    s.stats.rejected
                }),
                (
                    "monitor_sink_saved",
                    "Alerts a sink without a spool had not delivered at shutdown, saved for the next start",
                    |s| s.stats.saved,
                ),
                (
                    "monitor_sink_restored",
                    "Alerts the previous run saved at its shutdown, queued again at this start",
                    |s| s.stats.restored,
                ),
            ];
            for (name, help, stat) in stats {
                counters(&mut enc, name, help, sinks.iter().enumerate().map(|(i, s)| (view(i), stat(s))))?;
            }
            gauges(
                &mut enc,
                "monitor_sink_queued",
                "Alerts waiting in a sink's queue or spool",
                sinks.iter().enumerate().map(|(i, s)| (view(i), s.queued as i64)),
            )?;
            gauges(
                &mut enc,
                "monitor_sink_spool_bytes",
                "Bytes in a sink's disk spool",
                sinks.iter().enumerate().map(|(i, s)| (view(i), s.spool_bytes as i64)),
            )?;
        }

        encode_process(&mut enc, t.health.uptime())
    }
}

/// The standard process metrics, from /proc/self.
fn encode_process(enc: &mut DescriptorEncoder, uptime: std::time::Duration) -> std::fmt::Result {
    let Ok(me) = procfs::process::Process::myself() else { return Ok(()) };
    let tps = procfs::ticks_per_second() as f64;
    let page = procfs::page_size() as i64;
    if let Ok(stat) = me.stat() {
        let cpu = (stat.utime + stat.stime) as f64 / tps;
        family(
            enc,
            "process_cpu",
            "CPU time the daemon used (user and system)",
            Some(&Unit::Seconds),
            MetricType::Counter,
            [(Vec::new(), cpu)],
            |v, m| ConstCounter::new(v).encode(m),
        )?;
        gauge(enc, "process_resident_memory_bytes", "Resident memory of the daemon", stat.rss as i64 * page)?;
        gauge(enc, "process_virtual_memory_bytes", "Virtual memory of the daemon", stat.vsize as i64)?;
        gauge(enc, "process_threads", "Threads of the daemon", stat.num_threads)?;
    }
    if let Ok(n) = me.fd_count() {
        gauge(enc, "process_open_fds", "Open file descriptors of the daemon", n as i64)?;
    }
    gauge(
        enc,
        "process_start_time_seconds",
        "When the daemon started (Unix time)",
        unix_now() - uptime.as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn exposition_has_every_family_with_escaped_labels() {
        let t = Arc::new(Telemetry::new(Health::new(Duration::from_secs(5)), None, None));
        t.publish_pipeline(PipelineMetrics {
            events: vec![(monitor_common::EventType::Execve, 3), (monitor_common::EventType::Openat, 7)],
            kernel_drops: KernelDrops { per_cpu: vec![0, 2], per_kind: vec![("open", 2)] },
            kernel_filtered: crate::sensor::filter::FilteredCounts {
                per_type: vec![(monitor_common::EventType::Openat, 40)],
            },
            processes: 12,
            ..Default::default()
        });
        t.publish_rules(RuleMetrics {
            digest: "abc".into(),
            enabled: 1,
            rules: vec![(
                "Read \"shadow\"\n".into(),
                RuleCounters { priority: "Warning", evaluations: 9, matches: 2, alerts: 2, suppressed: 0 },
            )],
            self_alerts: vec![("Monitor started", 1)],
        });
        t.reload_failed();
        let text = t.render();
        for line in [
            "monitor_events_total{type=\"openat\"} 7",
            "monitor_kernel_drops_total{cpu=\"1\"} 2",
            "monitor_kernel_filtered_total{kind=\"open\"} 40",
            "monitor_process_table_entries 12",
            "monitor_rule_evaluations_total{rule=\"Read \\\"shadow\\\"\\n\"} 9",
            "monitor_alerts_total{rule=\"Read \\\"shadow\\\"\\n\",priority=\"Warning\"} 2",
            "monitor_rule_reloads_total{result=\"failure\"} 1",
            "monitor_ruleset_info{digest=\"abc\"} 1",
            "monitor_self_alerts_total{rule=\"Monitor started\"} 1",
            "monitor_healthy 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }
}
