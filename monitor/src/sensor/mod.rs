//! Loading and attaching the kernel programs, and reading what they report.

mod calls;
pub mod decode;
pub mod doors;
pub mod filter;
pub mod offsets;
pub mod prereq;
pub mod programs;
pub mod reader;

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, TracePoint},
};
use monitor_common::{
    DAEMON_TGID_GLOBAL, DROPS_MAP, EVENTS_MAP, EventKind, FILE_IDS_MAP, KIND_SLOTS, LEAF_NAMES_MAP,
    OFFSETS_GLOBAL, PORTS_MAP, SYSCALLS_GLOBAL, SyscallNumbers, WAKEUP_BYTES_GLOBAL,
};

use filter::SetSizes;

pub use decode::{DecodeError, RawEvent};
pub use reader::Reader;

static PROGRAMS_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

#[derive(Clone, Debug)]
pub struct SensorConfig {
    /// Ring buffer size in bytes: a power of two, at least one page.
    pub ring_bytes: u32,
    /// Entries of the in-kernel filter's sets.
    pub filter_sets: SetSizes,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self { ring_bytes: monitor_common::DEFAULT_RING_BYTES, filter_sets: SetSizes::default() }
    }
}

/// The loaded and attached kernel programs. Dropping it detaches them.
pub struct Sensor {
    ebpf: Ebpf,
    attached: usize,
    filter_sets: SetSizes,
}

/// Records the kernel could not put in the ring buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelDrops {
    /// Per CPU, summed over kinds.
    pub per_cpu: Vec<u64>,
    /// Per event kind, summed over CPUs: (kind name, count).
    pub per_kind: Vec<(&'static str, u64)>,
}

impl KernelDrops {
    pub fn total(&self) -> u64 {
        self.per_cpu.iter().sum()
    }

    /// Lost exec, fork and exit records: the process table may have missed a change.
    pub fn lifecycle(&self) -> u64 {
        self.per_kind.iter().filter(|(k, _)| matches!(*k, "exec" | "fork" | "exit")).map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for KernelDrops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel drops: {} total", self.total())?;
        for (cpu, n) in self.per_cpu.iter().enumerate() {
            write!(f, ", cpu{cpu}={n}")?;
        }
        for (kind, n) in &self.per_kind {
            if *n > 0 {
                write!(f, ", {kind}={n}")?;
            }
        }
        Ok(())
    }
}

/// This architecture's numbers of the syscalls the programs tell apart.
fn syscall_numbers() -> SyscallNumbers {
    #[cfg(target_arch = "x86_64")]
    let (open, creat) = (libc::SYS_open as i32, libc::SYS_creat as i32);
    #[cfg(not(target_arch = "x86_64"))]
    let (open, creat) = (-1, -1);
    SyscallNumbers {
        open,
        openat: libc::SYS_openat as i32,
        openat2: libc::SYS_openat2 as i32,
        creat,
        connect: libc::SYS_connect as i32,
        sendto: libc::SYS_sendto as i32,
        sendmsg: libc::SYS_sendmsg as i32,
        sendmmsg: libc::SYS_sendmmsg as i32,
        open_by_handle_at: libc::SYS_open_by_handle_at as i32,
        pidfd_getfd: libc::SYS_pidfd_getfd as i32,
        io_uring_enter: libc::SYS_io_uring_enter as i32,
        _pad: 0,
    }
}

fn attach_btf_tracepoint(ebpf: &mut Ebpf, btf: &aya::Btf, p: &programs::BtfProgram) -> Result<()> {
    let name = p.program;
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the object"))?
        .try_into()?;
    let started = std::time::Instant::now();
    prog.load(p.tracepoint, btf).map_err(|e| verifier_error(name, e))?;
    tracing::debug!(program = name, verify_ms = started.elapsed().as_millis() as u64, "loaded");
    prog.attach().with_context(|| format!("attaching {name} to BTF tracepoint {}", p.tracepoint))?;
    Ok(())
}

fn attach_tracepoints(ebpf: &mut Ebpf, a: &programs::Attachment) -> Result<usize> {
    let name = a.program;
    let prog: &mut TracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the object"))?
        .try_into()?;
    let started = std::time::Instant::now();
    prog.load().map_err(|e| verifier_error(name, e))?;
    tracing::debug!(program = name, verify_ms = started.elapsed().as_millis() as u64, "loaded");
    for (category, tracepoint) in a.tracepoints {
        prog.attach(category, tracepoint)
            .with_context(|| format!("attaching {name} to tracepoint {category}:{tracepoint}"))?;
    }
    Ok(a.tracepoints.len())
}

/// Whether the running kernel is older than major.minor (false when it cannot tell).
fn kernel_before(major: u8, minor: u8) -> bool {
    use aya::util::KernelVersion;
    KernelVersion::current().is_ok_and(|v| v < KernelVersion::new(major, minor, 0))
}

/// A rejected program's error, with the verifier log cut to its head and tail (the end says
/// why; the whole log can run to megabytes).
fn verifier_error(name: &str, e: aya::programs::ProgramError) -> anyhow::Error {
    const HEAD: usize = 3;
    const TAIL: usize = 40;
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let shown = if lines.len() > HEAD + TAIL {
        format!(
            "{}\n  [... {} lines of verifier log ...]\n{}",
            lines[..HEAD].join("\n"),
            lines.len() - HEAD - TAIL,
            lines[lines.len() - TAIL..].join("\n")
        )
    } else {
        text
    };
    anyhow!("the kernel rejected program {name}: {shown}")
}

/// The ring buffer size the kernel accepts: a power of two of at least a page.
pub fn check_ring_bytes(n: u32) -> Result<()> {
    let page = 4096;
    if n < page || !n.is_power_of_two() {
        bail!("ring buffer size {n} must be a power of two of at least {page} bytes");
    }
    Ok(())
}

/// Largest filter set the config may ask for: a hash map's memory is allocated when it is
/// created, and a LeafName entry takes about 100 bytes.
pub const MAX_SET_ENTRIES: u32 = 1 << 20;

/// The filter set sizes the kernel can create.
pub fn check_set_sizes(sizes: &SetSizes) -> Result<()> {
    for set in filter::FilterSet::ALL {
        let n = set.capacity(sizes);
        if n == 0 || n > MAX_SET_ENTRIES {
            bail!("kernel_filter_sets.{}: {n} must be between 1 and {MAX_SET_ENTRIES}", set.name());
        }
    }
    Ok(())
}

impl Sensor {
    /// Checks prerequisites, loads the programs with this kernel's offsets and attaches them.
    pub fn load(config: &SensorConfig) -> Result<Self> {
        check_ring_bytes(config.ring_bytes)?;
        check_set_sizes(&config.filter_sets)?;
        let found = prereq::check();
        for w in &found.warnings {
            tracing::warn!("{w}");
        }
        if !found.problems.is_empty() {
            bail!("cannot start the sensors:\n  - {}", found.problems.join("\n  - "));
        }
        // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones ignore it.
        if kernel_before(5, 11) {
            use nix::sys::resource::{RLIM_INFINITY, Resource, setrlimit};
            if let Err(e) = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY) {
                tracing::warn!(
                    "cannot lift RLIMIT_MEMLOCK ({e}): on kernels before 5.11 loading may fail; grant \
                     CAP_SYS_RESOURCE or raise LimitMEMLOCK"
                );
            }
        }

        // The parsed BTF is dropped before aya loads its own copy: both at once double the
        // daemon's peak memory.
        let (offsets, doors) = {
            let btf_offsets = offsets::BtfOffsets::from_sys()?;
            let mut offsets = btf_offsets.kernel_offsets()?;
            let doors = doors::Doors::detect(&btf_offsets, &mut offsets);
            (offsets, doors)
        };
        doors.log();
        let btf = aya::Btf::from_sys_fs().context("loading kernel BTF for the loader")?;
        let daemon_tgid = std::process::id();
        // Wake the reader early only when a quarter of the ring is full; otherwise its 10 ms
        // timer collects records, so a busy host pays no wake-up per event.
        let wakeup_bytes = u64::from(config.ring_bytes / 4);
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global(OFFSETS_GLOBAL, &offsets, true)
            .override_global(SYSCALLS_GLOBAL, &syscall_numbers(), true)
            .override_global(DAEMON_TGID_GLOBAL, &daemon_tgid, true)
            .override_global(WAKEUP_BYTES_GLOBAL, &wakeup_bytes, true)
            .map_max_entries(EVENTS_MAP, config.ring_bytes)
            .map_max_entries(LEAF_NAMES_MAP, config.filter_sets.leaf_names)
            .map_max_entries(FILE_IDS_MAP, config.filter_sets.file_identities)
            .map_max_entries(PORTS_MAP, config.filter_sets.ports)
            .load(PROGRAMS_OBJECT)
            .context("loading the kernel programs")?;

        // Every program is tried, so one start-up reports every rejected program at once.
        let mut attached = 0;
        let mut failures = Vec::new();
        for p in programs::BTF_TRACEPOINTS.iter().filter(|p| doors.admit(p.needs)) {
            match attach_btf_tracepoint(&mut ebpf, &btf, p) {
                Ok(()) => attached += 1,
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        for a in programs::TRACEPOINT_PROGRAMS {
            match attach_tracepoints(&mut ebpf, a) {
                Ok(n) => attached += n,
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        let ia32 = doors.admit(programs::Needs::Ia32);
        if let Err(e) = calls::fill_shapes(&mut ebpf, ia32) {
            failures.push(format!("{e:#}"));
        }
        if ia32 && let Err(e) = calls::load_ia32_tail(&mut ebpf, &btf) {
            failures.push(format!("{e:#}"));
        }
        match calls::attach(&mut ebpf) {
            Ok((n, missing)) => {
                attached += n;
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().map(|t| t.name()).collect();
                    tracing::warn!(
                        "the kernel has no exit tracepoint for {}: those calls are not watched",
                        names.join(", ")
                    );
                }
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
        if !failures.is_empty() {
            bail!(
                "{} programs failed ({attached} attachments made):\n{}",
                failures.len(),
                failures.join("\n")
            );
        }
        Ok(Self { ebpf, attached, filter_sets: config.filter_sets })
    }

    pub fn attached(&self) -> usize {
        self.attached
    }

    /// Takes the ring buffer for the reader; callable once.
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        take_map(&mut self.ebpf, EVENTS_MAP)
    }

    /// Takes the filter maps; callable once. Until a filter is installed everything passes.
    pub fn take_filter(&mut self) -> Result<filter::KernelFilter> {
        filter::KernelFilter::from_ebpf(&mut self.ebpf, self.filter_sets)
    }

    /// Takes the drop counters; callable once.
    pub fn take_drops(&mut self) -> Result<DropCounters> {
        Ok(DropCounters { map: take_map(&mut self.ebpf, DROPS_MAP)? })
    }
}

/// Takes one of the programs' maps, typed; each can be taken once.
fn take_map<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    name: &str,
) -> Result<T> {
    let map = ebpf.take_map(name).ok_or_else(|| anyhow!("map {name} missing or already taken"))?;
    T::try_from(map).with_context(|| format!("map {name}"))
}

/// A per-CPU counter array indexed by EventKind, summed per CPU and per kind.
fn per_kind_counts(map: &PerCpuArray<MapData, u64>) -> Result<KernelDrops> {
    let mut per_cpu: Vec<u64> = Vec::new();
    let mut per_kind = Vec::new();
    for slot in 0..KIND_SLOTS {
        let Some(kind) = EventKind::from_u16(slot as u16) else { continue };
        let values = map.get(&slot, 0)?;
        if per_cpu.len() < values.len() {
            per_cpu.resize(values.len(), 0);
        }
        for (cpu, v) in values.iter().enumerate() {
            per_cpu[cpu] += v;
        }
        per_kind.push((kind.name(), values.iter().sum()));
    }
    Ok(KernelDrops { per_cpu, per_kind })
}

pub struct DropCounters {
    map: PerCpuArray<MapData, u64>,
}

impl DropCounters {
    pub fn read(&self) -> Result<KernelDrops> {
        per_kind_counts(&self.map)
    }
}
