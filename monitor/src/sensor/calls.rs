//! The generic call program (monitor-ebpf's calls.rs): its shape maps, filled from
//! monitor_common::calls::CALLS by syscall number, and its attachment to each call's exit.

use anyhow::{Context, Result, anyhow};
use aya::Ebpf;
use aya::maps::Array;
use aya::programs::TracePoint;
use monitor_common::calls::{CALL_SHAPE_SLOTS, CALLS, CallShape, SOCKETCALL_SLOTS};
use monitor_common::{CALL_SHAPES_MAP, EventType, IA32_CALL_SHAPES_MAP, SOCKETCALL_SHAPES_MAP};

const PROGRAM: &str = "sys_exit_call";
/// The ia32 program's tail for the calls, and the program array it is called through.
const IA32_PROGRAM: &str = "sys_exit_ia32_call";
const IA32_TAIL_MAP: &str = "IA32_CALL";

/// The call's number on this architecture; None where it has no such syscall.
pub fn native_number(t: EventType) -> Option<i64> {
    use libc::*;
    let nr = match t {
        EventType::Ptrace => SYS_ptrace,
        EventType::Symlinkat => SYS_symlinkat,
        EventType::Linkat => SYS_linkat,
        EventType::InitModule => SYS_init_module,
        EventType::FinitModule => SYS_finit_module,
        EventType::Socket => SYS_socket,
        EventType::Dup => SYS_dup,
        EventType::Dup3 => SYS_dup3,
        EventType::Setns => SYS_setns,
        EventType::Unshare => SYS_unshare,
        EventType::Setuid => SYS_setuid,
        EventType::Setgid => SYS_setgid,
        EventType::Setresuid => SYS_setresuid,
        EventType::Setresgid => SYS_setresgid,
        EventType::Fchmod => SYS_fchmod,
        EventType::Fchmodat => SYS_fchmodat,
        EventType::Unlinkat => SYS_unlinkat,
        EventType::Renameat2 => SYS_renameat2,
        EventType::Mkdirat => SYS_mkdirat,
        EventType::Bpf => SYS_bpf,
        EventType::Userfaultfd => SYS_userfaultfd,
        EventType::MemfdCreate => SYS_memfd_create,
        EventType::Accept => SYS_accept,
        EventType::Accept4 => SYS_accept4,
        EventType::Listen => SYS_listen,
        EventType::Recvfrom => SYS_recvfrom,
        EventType::Recvmsg => SYS_recvmsg,
        _ => return legacy_number(t),
    };
    Some(nr)
}

/// The calls newer architectures only have in their *at form.
#[cfg(target_arch = "x86_64")]
fn legacy_number(t: EventType) -> Option<i64> {
    use libc::*;
    Some(match t {
        EventType::Symlink => SYS_symlink,
        EventType::Link => SYS_link,
        EventType::Dup2 => SYS_dup2,
        EventType::Chmod => SYS_chmod,
        EventType::Unlink => SYS_unlink,
        EventType::Rmdir => SYS_rmdir,
        EventType::Rename => SYS_rename,
        EventType::Renameat => SYS_renameat,
        EventType::Mkdir => SYS_mkdir,
        _ => return None,
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn legacy_number(_: EventType) -> Option<i64> {
    None
}

/// The exit tracepoint of a call.
fn tracepoint(t: EventType) -> String {
    format!("sys_exit_{}", t.name())
}

/// Fills the shape maps; with `ia32`, the 32-bit numbers and socketcall's too.
pub fn fill_shapes(ebpf: &mut Ebpf, ia32: bool) -> Result<()> {
    let native = CALLS.iter().filter_map(|d| Some((native_number(d.evt_type)?, d.shape)));
    fill(ebpf, CALL_SHAPES_MAP, native, CALL_SHAPE_SLOTS)?;
    if ia32 {
        let compat = CALLS.iter().flat_map(|d| d.ia32.iter().map(|&nr| (i64::from(nr), d.shape)));
        fill(ebpf, IA32_CALL_SHAPES_MAP, compat, CALL_SHAPE_SLOTS)?;
        let multiplexed =
            CALLS.iter().filter(|d| d.socketcall != 0).map(|d| (i64::from(d.socketcall), d.shape));
        fill(ebpf, SOCKETCALL_SHAPES_MAP, multiplexed, SOCKETCALL_SLOTS)?;
    }
    Ok(())
}

fn fill(
    ebpf: &mut Ebpf,
    map_name: &str,
    shapes: impl Iterator<Item = (i64, CallShape)>,
    slots: u32,
) -> Result<()> {
    let map = ebpf.map_mut(map_name).ok_or_else(|| anyhow!("map {map_name} missing"))?;
    let mut array: Array<_, CallShape> = Array::try_from(map).with_context(|| format!("map {map_name}"))?;
    for (nr, shape) in shapes.filter(|(nr, _)| (0..i64::from(slots)).contains(nr)) {
        array.set(nr as u32, shape, 0).with_context(|| format!("{map_name}[{nr}]"))?;
    }
    Ok(())
}

/// Loads the ia32 calls' program (not attached: the ia32 program tail-calls it).
pub fn load_ia32_tail(ebpf: &mut Ebpf, btf: &aya::Btf) -> Result<()> {
    use aya::maps::ProgramArray;
    use aya::programs::BtfTracePoint;
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(IA32_PROGRAM)
        .ok_or_else(|| anyhow!("program {IA32_PROGRAM} missing from the object"))?
        .try_into()?;
    prog.load("sys_exit", btf).map_err(|e| super::verifier_error(IA32_PROGRAM, e))?;
    let fd = prog.fd()?.try_clone()?;
    let map = ebpf.map_mut(IA32_TAIL_MAP).ok_or_else(|| anyhow!("map {IA32_TAIL_MAP} missing"))?;
    let mut tail: ProgramArray<_> =
        ProgramArray::try_from(map).with_context(|| format!("map {IA32_TAIL_MAP}"))?;
    tail.set(0, &fd, 0).with_context(|| format!("{IA32_TAIL_MAP}[0] = {IA32_PROGRAM}"))?;
    Ok(())
}

/// Loads the program and attaches it to every call's exit the kernel has. Returns the number
/// of attachments and the calls left unwatched because their tracepoint is missing (a syscall
/// the kernel was built without).
pub fn attach(ebpf: &mut Ebpf) -> Result<(usize, Vec<EventType>)> {
    let prog: &mut TracePoint = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| anyhow!("program {PROGRAM} missing from the object"))?
        .try_into()?;
    prog.load().map_err(|e| super::verifier_error(PROGRAM, e))?;
    let syscalls = super::prereq::tracefs().map_err(|e| anyhow!(e))?.join("events/syscalls");
    let mut attached = 0;
    let mut missing = Vec::new();
    for def in CALLS.iter().filter(|d| native_number(d.evt_type).is_some()) {
        let name = tracepoint(def.evt_type);
        if !syscalls.join(&name).is_dir() {
            missing.push(def.evt_type);
            continue;
        }
        prog.attach("syscalls", &name).with_context(|| format!("attaching {PROGRAM} to syscalls:{name}"))?;
        attached += 1;
    }
    Ok((attached, missing))
}
