//! io_uring requests that open files, connect, or send to a destination of their own, and the
//! creation of rings. A request is reported at submission (io_uring_submit_req fires after its
//! prep, with what the caller asked for in the request) and its result at completion
//! (io_uring_complete), as two records joined by the request's address; a request that posts
//! no completion (IOSQE_CQE_SKIP_SUCCESS) is reported at submission alone, its result unknown.
//! A request may be issued and completed in an io-wq worker or SQPOLL thread: those are threads
//! of the submitting process, sharing its file table, so records carry its pid.

use aya_ebpf::{
    macros::{btf_tracepoint, map},
    maps::LruHashMap,
    programs::BtfTracePointContext,
};
use monitor_common::{
    AF_INET, AF_INET6, AF_UNIX, Call, EventType, NetEvent, OpenEvent, REC_IOU_AWAITS_COMPLETION,
    REC_IOU_COMPLETION, REC_RESULT_UNKNOWN, RESULTS, SyscallEvent, Via, iouring_op, open_class,
};

use crate::files::{self, Memory, Opened};
use crate::filter;
use crate::kernel::{self, Task, is_daemon, off, rd};
use crate::record::Record;
use crate::sockets::{self, Destination, IOU_CONNECTS, NetCall};

// io_kiocb.flags bits that mirror the SQE's (include/linux/io_uring_types.h).
const REQ_F_FIXED_FILE: u64 = 1 << 0;
const REQ_F_CQE_SKIP: u64 = 1 << 6;
/// file_slot asking the kernel to pick a free fixed slot, which the result then names.
const IORING_FILE_INDEX_ALLOC: u32 = !0;

const PENDING_OPEN: u8 = 0;
const PENDING_NET: u8 = 1;
/// A rename or unlink, whose completion voids the kernel filter's directory verdicts.
const PENDING_PATH_CHANGE: u8 = 2;

/// A submitted request whose completion is awaited.
#[repr(C)]
#[derive(Copy, Clone)]
pub struct Pending {
    kind: u8,
    evt_type: u8,
    call: u8,
    _pad: u8,
    /// An open's fixed-file slot (0: the fd table).
    file_slot: u32,
}

#[map]
static IOU_PENDING: LruHashMap<u64, Pending> = LruHashMap::with_max_entries(8192, 0);

#[btf_tracepoint(function = "io_uring_submit_req")]
pub fn io_uring_submit_req(ctx: BtfTracePointContext) -> i32 {
    let req: u64 = ctx.arg(0);
    let opcode: u8 = rd(req + off!(iou_req_opcode));
    match opcode {
        iouring_op::OPENAT | iouring_op::OPENAT2 => submit_open(req, opcode),
        iouring_op::CONNECT
        | iouring_op::SENDMSG
        | iouring_op::SEND
        | iouring_op::SEND_ZC
        | iouring_op::SENDMSG_ZC => submit_net(req, opcode),
        iouring_op::RENAMEAT | iouring_op::UNLINKAT => submit_path_change(req),
        _ => {}
    }
    0
}

/// A rename (or a directory's removal) through io_uring gives directories new paths just as
/// rename(2) does, so directory verdicts are voided as for the syscalls: at submission, and
/// again at completion, since an io-wq worker may run it later, after a verdict was made under
/// the old path. Unlinks of files are counted too (the request's flags are not read): they are
/// rare through io_uring, and voiding verdicts only costs re-judging directories.
#[inline(always)]
fn submit_path_change(req: u64) {
    filter::bump_path_gen();
    let (awaits, _) = submit_flags(req);
    if awaits {
        let p = Pending { kind: PENDING_PATH_CHANGE, evt_type: 0, call: 0, _pad: 0, file_slot: 0 };
        let _ = IOU_PENDING.insert(req, p, 0);
    }
}

/// The header bits of a submission: awaiting its completion, or final with its result unknown.
#[inline(always)]
fn submit_flags(req: u64) -> (bool, u16) {
    let req_flags: u64 = rd(req + off!(iou_req_flags));
    let awaits = req_flags & REQ_F_CQE_SKIP == 0;
    (awaits, if awaits { REC_IOU_AWAITS_COMPLETION } else { REC_RESULT_UNKNOWN })
}

#[inline(always)]
fn submit_open(req: u64, opcode: u8) {
    if is_daemon() {
        return;
    }
    let (evt_type, call) = if opcode == iouring_op::OPENAT {
        (EventType::Openat, Call::IoUringOpenat)
    } else {
        (EventType::Openat2, Call::IoUringOpenat2)
    };
    let flags = rd::<u64>(req + off!(iou_open_how_flags)) as u32;
    let class = open_class(flags);
    if let Some(c) = filter::config()
        && !monitor_common::open_wanted(&c.open, class, RESULTS)
    {
        filter::count_filtered(evt_type);
        return;
    }
    let dfd: i32 = rd(req + off!(iou_open_dfd));
    let file_slot: u32 = rd(req + off!(iou_open_file_slot));
    let filename: u64 = rd(req + off!(iou_open_filename));
    let name: u64 = if filename == 0 { 0 } else { rd(filename + off!(filename_name)) };
    let (awaits, rec_flags) = submit_flags(req);
    crate::cgroups::announce();
    if let Some(mut rec) = Record::<OpenEvent>::begin() {
        files::set_door(&mut rec, Via::IoUring, call);
        let ev = rec.fixed();
        ev.flags = flags;
        ev.mode = rd::<u64>(req + off!(iou_open_how_mode)) as u32;
        ev.dirfd = dfd;
        ev.evt_type = evt_type as u8;
        ev.iou_req = req;
        // The kernel's copy of the caller's string (struct filename), taken at prep.
        let path_flags = files::append_caller_path(&mut rec, name, Memory::Kernel, dfd);
        rec.fixed().header.flags = path_flags | rec_flags;
        let _ = rec.submit();
    }
    // Awaited even when the record found the ring full: the completion then stands alone.
    if awaits {
        let p =
            Pending { kind: PENDING_OPEN, evt_type: evt_type as u8, call: call as u8, _pad: 0, file_slot };
        let _ = IOU_PENDING.insert(req, p, 0);
    }
}

#[inline(always)]
fn submit_net(req: u64, opcode: u8) {
    if is_daemon() {
        return;
    }
    let (evt_type, call) = match opcode {
        iouring_op::CONNECT => (EventType::Connect, Call::IoUringConnect),
        iouring_op::SENDMSG => (EventType::Sendmsg, Call::IoUringSendmsg),
        iouring_op::SENDMSG_ZC => (EventType::Sendmsg, Call::IoUringSendmsgZc),
        iouring_op::SEND_ZC => (EventType::Sendto, Call::IoUringSendZc),
        _ => (EventType::Sendto, Call::IoUringSend),
    };
    // Prep copied the destination into the request's async data: connect's address, or the
    // msghdr a send names (its msg_name points at the copy; NULL on a connected socket).
    let async_data: u64 = rd(req + off!(iou_req_async_data));
    if async_data == 0 {
        return;
    }
    let dest = if evt_type == EventType::Connect {
        let len: u32 = rd(req + off!(iou_connect_addr_len));
        Destination { addr: connect_address(async_data), len, memory: Memory::Kernel }
    } else {
        let name: u64 = rd(async_data + off!(iou_msg_name));
        if name == 0 {
            return;
        }
        Destination { addr: name, len: rd::<u32>(async_data + off!(iou_msg_namelen)), memory: Memory::Kernel }
    };
    let fd: i32 = rd(req + off!(iou_req_fd));
    let req_flags: u64 = rd(req + off!(iou_req_flags));
    // The request's file is assigned at issue, after this tracepoint: look its fd up.
    let file = if req_flags & REQ_F_FIXED_FILE != 0 {
        kernel::iou_fixed_file(rd(req + off!(iou_req_ctx)), fd as u32)
    } else {
        Task::current().fd_file(fd as u32)
    };
    let sk = kernel::file_sock(file);
    if evt_type == EventType::Connect {
        if sk != 0 {
            let _ = IOU_CONNECTS.insert(sk, 1, 0);
        }
    } else if !sockets::send_names_destination(sk, true) {
        return;
    }
    let (awaits, rec_flags) = submit_flags(req);
    crate::cgroups::announce();
    let c = NetCall {
        evt_type,
        ret: 0,
        results: RESULTS,
        fd,
        via: Via::IoUring,
        call,
        flags: rec_flags,
        iou_req: req,
    };
    if sockets::report(&c, sk, dest) && awaits {
        let p =
            Pending { kind: PENDING_NET, evt_type: evt_type as u8, call: call as u8, _pad: 0, file_slot: 0 };
        let _ = IOU_PENDING.insert(req, p, 0);
    }
}

/// Where a connect's prep copied its address. Kernels since mid-2026 (stable included) keep a
/// bare sockaddr_storage as the async data; earlier ones a struct io_async_msghdr with the
/// address in its `addr`. The old layout starts with a pointer (or NULL), whose low 16 bits
/// can never be AF_UNIX, AF_INET or AF_INET6 (1, 2, 10: a pointer is 8-byte aligned).
#[inline(always)]
fn connect_address(async_data: u64) -> u64 {
    let family: u16 = rd(async_data);
    if family == AF_UNIX || family == AF_INET || family == AF_INET6 {
        async_data
    } else {
        async_data + off!(iou_msg_addr)
    }
}

/// io_uring_complete(ctx, req, cqe), 6.13 and later.
#[btf_tracepoint(function = "io_uring_complete")]
pub fn io_uring_complete(ctx: BtfTracePointContext) -> i32 {
    let req: u64 = ctx.arg(1);
    let cqe: u64 = ctx.arg(2);
    // struct io_uring_cqe { __u64 user_data; __s32 res; ... } (uapi)
    complete(req, || rd::<i32>(cqe + 8));
    0
}

/// io_uring_complete(ctx, req, user_data, res, cflags, extra1, extra2), before 6.13.
#[btf_tracepoint(function = "io_uring_complete")]
pub fn io_uring_complete_res(ctx: BtfTracePointContext) -> i32 {
    let req: u64 = ctx.arg(1);
    let res: i32 = ctx.arg(3);
    complete(req, || res);
    0
}

/// Every completion of every ring passes here: one that was not awaited costs one lookup.
#[inline(always)]
fn complete(req: u64, res: impl FnOnce() -> i32) {
    let Some(p) = (unsafe { IOU_PENDING.get(req) }).copied() else { return };
    let _ = IOU_PENDING.remove(req);
    if p.kind == PENDING_PATH_CHANGE {
        filter::bump_path_gen();
        return;
    }
    let res = res();
    let (Some(evt_type), Some(call)) = (EventType::from_u8(p.evt_type), Call::from_u8(p.call)) else {
        return;
    };
    if p.kind == PENDING_NET {
        let Some(mut rec) = Record::<NetEvent>::begin() else { return };
        let ev = rec.fixed();
        ev.header.via = Via::IoUring as u8;
        ev.header.call = call as u8;
        ev.header.flags = REC_IOU_COMPLETION;
        ev.ret = res as i64;
        ev.fd = -1;
        ev.evt_type = evt_type as u8;
        ev.iou_req = req;
        let _ = rec.submit();
        return;
    }
    let task = Task::current();
    let (root_mnt, root_dentry) = task.root();
    let file = if res < 0 {
        0
    } else if p.file_slot == 0 {
        task.fd_file(res as u32)
    } else {
        // A fixed-file open: the file went into the ring's table, never into the fd table.
        let index = if p.file_slot == IORING_FILE_INDEX_ALLOC { res as u32 } else { p.file_slot - 1 };
        kernel::iou_fixed_file(rd(req + off!(iou_req_ctx)), index)
    };
    let opened = Opened::read(file, root_mnt, root_dentry);
    let Some(mut rec) = Record::<OpenEvent>::begin() else { return };
    files::set_door(&mut rec, Via::IoUring, call);
    let ev = rec.fixed();
    ev.ret = res as i64;
    ev.evt_type = evt_type as u8;
    ev.iou_req = req;
    ev.dirfd = kernel::AT_FDCWD;
    let flags = if file != 0 { opened.write(&mut rec, file) } else { 0 };
    rec.fixed().header.flags = flags | REC_IOU_COMPLETION;
    let _ = rec.submit();
}

/// io_uring_create(fd, ctx, sq_entries, cq_entries, flags): a ring was set up, by any ABI's
/// io_uring_setup.
#[btf_tracepoint(function = "io_uring_create")]
pub fn io_uring_create(ctx: BtfTracePointContext) -> i32 {
    if is_daemon() {
        return 0;
    }
    let fd: i32 = ctx.arg(0);
    let sq_entries: u32 = ctx.arg(2);
    let flags: u32 = ctx.arg(4);
    crate::cgroups::announce();
    let Some(mut rec) = Record::<SyscallEvent>::begin() else { return 0 };
    let ia32 = kernel::in_ia32_syscall(Task::current());
    let ev = rec.fixed();
    ev.header.via = if ia32 { Via::Ia32 } else { Via::Syscall } as u8;
    ev.ret = fd as i64;
    ev.args = [sq_entries as u64, flags as u64, 0, 0];
    ev.evt_type = EventType::IoUringSetup as u8;
    let _ = rec.submit();
    0
}
