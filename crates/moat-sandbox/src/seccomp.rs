//! The seccomp deny-list: system calls a stdio MCP server has no business making.
//!
//! A deny-list, not an allow-list: MCP servers are written in Node, Python, Go, Rust, Java...
//! and an allow-list that fits all of their runtimes would either be huge or break them. The
//! calls denied here are the ones that widen a process's reach (debugging other processes,
//! mounting, loading kernel code, new namespaces, kernel keyrings) or are a common kernel attack
//! surface (bpf, userfaultfd, perf, io_uring). Denied calls fail with `EPERM`, so a server that
//! merely probes for them keeps running.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use crate::error::SandboxError;

/// System calls denied outright, by name (for the report and docs) and number.
pub const DENIED_SYSCALLS: &[(&str, libc::c_long)] = &[
    // Reading or writing other processes' memory.
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kcmp", libc::SYS_kcmp),
    // Changing what the filesystem looks like.
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    // Escaping path-based rules through file handles.
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    // Loading or replacing kernel code.
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("bpf", libc::SYS_bpf),
    // Whole-machine state.
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("syslog", libc::SYS_syslog),
    ("vhangup", libc::SYS_vhangup),
    // Joining other namespaces.
    ("setns", libc::SYS_setns),
    // Kernel keyrings (shared per user: a sandboxed child could read the user's keys).
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    // Kernel attack surface.
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
];

/// Namespace flags refused to `unshare` and `clone`: a new user namespace gives the child
/// every capability inside it, and a kernel attack surface far larger than an MCP server needs.
const NAMESPACE_FLAGS: &[(&str, libc::c_int)] = &[
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER),
    ("CLONE_NEWNS", libc::CLONE_NEWNS),
    ("CLONE_NEWNET", libc::CLONE_NEWNET),
    ("CLONE_NEWPID", libc::CLONE_NEWPID),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP),
    ("CLONE_NEWTIME", 0x80),
];

/// Which socket families the child may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sockets {
    /// `network = true`: every family but `AF_PACKET` (raw frames).
    AllButPacket,
    /// A TCP allow-list: `AF_UNIX`, `AF_INET`, `AF_INET6` and `AF_NETLINK` only (Landlock then
    /// limits TCP); no `AF_VSOCK` to a hypervisor, no Bluetooth, CAN, XDP...
    UnixInetNetlink,
    /// `network = false`: `AF_UNIX` only. No TCP/IP (UDP and DNS included), no netlink, no vsock.
    UnixOnly,
}

impl Sockets {
    /// The families allowed, or `None` for "all but `AF_PACKET`".
    fn allowed(self) -> Option<&'static [libc::c_int]> {
        match self {
            Sockets::AllButPacket => None,
            Sockets::UnixInetNetlink => Some(&[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK]),
            Sockets::UnixOnly => Some(&[libc::AF_UNIX]),
        }
    }
}

/// The BPF programs to install, in order.
///
/// # Errors
/// [`SandboxError::Seccomp`] on an architecture this filter does not know, or when the
/// filter cannot be compiled.
pub(crate) fn build(sockets: Sockets) -> Result<Vec<Vec<libc::sock_filter>>, SandboxError> {
    let arch = target_arch()?;
    let err = |e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string());

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in DENIED_SYSCALLS {
        rules.insert(*nr, Vec::new());
    }
    let flag_rules = || -> Result<Vec<SeccompRule>, SandboxError> {
        NAMESPACE_FLAGS
            .iter()
            .map(|(_, flag)| {
                let flag = u64::from(flag.unsigned_abs());
                SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag)
                    .and_then(|c| SeccompRule::new(vec![c]))
                    .map_err(err)
            })
            .collect()
    };
    rules.insert(libc::SYS_unshare, flag_rules()?);
    rules.insert(libc::SYS_clone, flag_rules()?);
    let family = |op, family: libc::c_int| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, u64::from(family.unsigned_abs())).map_err(err)
    };
    let socket_rule = match sockets.allowed() {
        // Denied when the family is AF_PACKET.
        None => SeccompRule::new(vec![family(SeccompCmpOp::Eq, libc::AF_PACKET)?]),
        // Denied when the family is none of the allowed ones (conditions of a rule are ANDed).
        Some(allowed) => {
            SeccompRule::new(allowed.iter().map(|f| family(SeccompCmpOp::Ne, *f)).collect::<Result<Vec<_>, _>>()?)
        }
    }
    .map_err(err)?;
    rules.insert(libc::SYS_socket, vec![socket_rule]);

    let eperm = u32::try_from(libc::EPERM).unwrap_or(1);
    let deny: BpfProgram = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(eperm), arch)
        .and_then(BpfProgram::try_from)
        .map_err(err)?;

    // clone3 passes its flags in a struct that seccomp cannot read, so the namespace rule above
    // cannot see them: answer ENOSYS, and the C libraries fall back to clone (as Docker does).
    let enosys = u32::try_from(libc::ENOSYS).unwrap_or(38);
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let clone3: BpfProgram = SeccompFilter::new(clone3, SeccompAction::Allow, SeccompAction::Errno(enosys), arch)
        .and_then(BpfProgram::try_from)
        .map_err(err)?;

    let mut programs = vec![to_libc(&deny), to_libc(&clone3)];
    if let Some(x32) = x32_filter() {
        programs.push(x32);
    }
    Ok(programs)
}

/// Short summary of what the filter denies, for the report (the full list is
/// [`DENIED_SYSCALLS`] and `docs/sandbox.md`).
pub fn describe(sockets: Sockets) -> String {
    let mut s = format!(
        "deny-list of {} system calls (ptrace, mount, bpf, kexec, modules, keyrings...), namespace flags on unshare/clone, clone3",
        DENIED_SYSCALLS.len()
    );
    s.push_str(match sockets {
        Sockets::AllButPacket => ", AF_PACKET sockets",
        Sockets::UnixInetNetlink => ", sockets other than AF_UNIX/AF_INET/AF_INET6/AF_NETLINK",
        Sockets::UnixOnly => ", sockets other than AF_UNIX",
    });
    if cfg!(target_arch = "x86_64") {
        s.push_str(", x32 system calls");
    }
    s
}

/// Names of the namespace flags refused to `unshare` and `clone`.
pub fn denied_namespace_flags() -> impl Iterator<Item = &'static str> {
    NAMESPACE_FLAGS.iter().map(|(n, _)| *n)
}

fn target_arch() -> Result<TargetArch, SandboxError> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(TargetArch::aarch64)
    } else if cfg!(target_arch = "riscv64") {
        Ok(TargetArch::riscv64)
    } else {
        Err(SandboxError::Seccomp(format!("architecture `{}` is not supported", std::env::consts::ARCH)))
    }
}

fn to_libc(program: &BpfProgram) -> Vec<libc::sock_filter> {
    program.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect()
}

/// On x86_64 the same architecture value also carries the x32 ABI, whose system call numbers
/// have bit 30 set and would walk around a deny-list keyed on the 64-bit numbers. Refuse them
/// all (seccompiler's filter checks the architecture but not this bit).
fn x32_filter() -> Option<Vec<libc::sock_filter>> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let ld = |k: u32| libc::sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k };
    let jmp = |op: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | op | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ret = |k: u32| libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k };
    let enosys = u32::try_from(libc::ENOSYS).unwrap_or(38);
    // struct seccomp_data { int nr; __u32 arch; ... }: nr at offset 0, arch at offset 4.
    Some(vec![
        ld(4),
        jmp(libc::BPF_JEQ, AUDIT_ARCH_X86_64, 0, 3),
        ld(0),
        jmp(libc::BPF_JGE, X32_SYSCALL_BIT, 0, 1),
        ret(libc::SECCOMP_RET_ERRNO | enosys),
        ret(libc::SECCOMP_RET_ALLOW),
    ])
}
