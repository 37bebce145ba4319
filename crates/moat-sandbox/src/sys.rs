//! The only `unsafe` code of Moat: what runs in the forked child between `fork` and `exec`
//! (rlimits, capability bounding set, `no_new_privs`, Landlock, seccomp), and the one read-only Landlock version query.
//!
//! Everything the child needs is computed and allocated in the parent ([`ChildSetup`]); the
//! closure given to `pre_exec` only makes system calls on that data, because after `fork` in a
//! multi-threaded parent only async-signal-safe operations are allowed (no allocation, no locks).
#![allow(unsafe_code, reason = "pre_exec and raw Landlock/seccomp system calls; see each SAFETY comment")]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// `LANDLOCK_CREATE_RULESET_VERSION` from `<linux/landlock.h>`.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
/// `LANDLOCK_RULE_PATH_BENEATH` from `<linux/landlock.h>`.
const LANDLOCK_RULE_PATH_BENEATH: libc::c_uint = 1;

/// `struct landlock_path_beneath_attr` (packed in the kernel's UAPI header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version of the running kernel, or the errno of the query
/// (`ENOSYS`: not built in; `EOPNOTSUPP`: built in but disabled at boot).
pub(crate) fn landlock_abi() -> Result<i32, i32> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns the
    // ABI version; it reads no memory (the attribute pointer is NULL and its size 0) and creates
    // no file descriptor.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOSYS))
    } else {
        Ok(i32::try_from(v).unwrap_or(i32::MAX))
    }
}

/// Everything the child applies to itself before `exec`, prepared by the parent.
pub(crate) struct ChildSetup {
    /// `(resource, limit)` pairs for `setrlimit`.
    pub rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    /// A Landlock ruleset (created and filled in the parent) to enforce with
    /// `landlock_restrict_self`.
    pub landlock: Option<LandlockChild>,
    /// seccomp BPF programs, installed in order (the kernel runs all of them; the most
    /// restrictive verdict wins).
    pub seccomp: Vec<Vec<libc::sock_filter>>,
}

pub(crate) struct LandlockChild {
    pub ruleset: OwnedFd,
    /// Access rights granted on the child's own `/proc/self`, which can only be opened in the
    /// child (in the parent it would name the parent's process).
    pub proc_self_access: u64,
}

/// Registers `setup` to run in the child between `fork` and `exec`.
pub(crate) fn install(cmd: &mut tokio::process::Command, setup: ChildSetup) {
    let ChildSetup { rlimits, landlock, seccomp } = setup;
    let hook = move || apply(&rlimits, landlock.as_ref(), &seccomp);
    // SAFETY: `apply` is async-signal-safe: it only reads data the parent prepared before the
    // fork (no allocation, no locks, no panics: every failure is an `io::Error` built from
    // errno, which does not allocate) and makes the system calls setrlimit, prctl, open, close,
    // landlock_add_rule, landlock_restrict_self and seccomp. It touches no state shared with
    // other threads of the parent.
    unsafe {
        cmd.pre_exec(hook);
    }
}

fn apply(
    rlimits: &[(libc::__rlimit_resource_t, libc::rlimit)],
    landlock: Option<&LandlockChild>,
    seccomp: &[Vec<libc::sock_filter>],
) -> io::Result<()> {
    for (resource, limit) in rlimits {
        // SAFETY: `limit` points to a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(*resource, limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // Drop every capability from the bounding set and the ambient set, so that a child of a
    // root gateway does not get root's capabilities back at exec. Without CAP_SETPCAP (a
    // gateway that is not root) the drop fails with EPERM, and there is nothing to drop: an
    // unprivileged process has no capabilities after exec, and no_new_privs keeps file
    // capabilities from granting any. EINVAL marks the end of the kernel's capability list.
    for cap in 0..64 {
        // SAFETY: prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) takes no pointers.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINVAL) | Some(libc::EPERM) => break,
                _ => return Err(io::Error::last_os_error()),
            }
        }
    }
    // SAFETY: prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) takes no pointers; EINVAL
    // on kernels before 4.3, which have no ambient set to clear.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(ll) = landlock {
        let ruleset = ll.ruleset.as_raw_fd();
        // SAFETY: the path is a NUL-terminated static string.
        let proc_self =
            unsafe { libc::open(c"/proc/self".as_ptr(), libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY) };
        if proc_self >= 0 {
            let attr = PathBeneathAttr { allowed_access: ll.proc_self_access, parent_fd: proc_self };
            // SAFETY: `attr` is a valid landlock_path_beneath_attr that outlives the call;
            // `ruleset` is an open Landlock ruleset descriptor owned by this closure.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset,
                    LANDLOCK_RULE_PATH_BENEATH,
                    &attr as *const PathBeneathAttr,
                    0u32,
                )
            };
            let err = io::Error::last_os_error();
            // SAFETY: `proc_self` is a descriptor this function opened.
            unsafe { libc::close(proc_self) };
            if rc != 0 {
                return Err(err);
            }
        }
        // SAFETY: landlock_restrict_self(fd, 0) takes no pointers.
        if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for program in seccomp {
        let prog = libc::sock_fprog {
            len: u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points to `program`, which outlives the call; the kernel copies the
        // filter and never writes through the pointer.
        let rc = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0u32, &prog as *const libc::sock_fprog)
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
