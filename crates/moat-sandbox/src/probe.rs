//! What the running kernel can enforce (`moat sandbox check`, and the fail-closed decisions of
//! [`crate::prepare`]). Reads `/proc` and asks Landlock its ABI version; changes nothing.

use serde::Serialize;

/// What this kernel supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelSupport {
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// Landlock LSM.
    pub landlock: LandlockSupport,
    /// seccomp in filter mode (BPF).
    pub seccomp_filter: bool,
    /// `PR_SET_NO_NEW_PRIVS` (Linux 3.5+; visible as `NoNewPrivs:` in `/proc/self/status`).
    pub no_new_privs: bool,
    /// rlimits (`setrlimit`): always there on Linux.
    pub rlimits: bool,
    /// User namespaces: not used by the sandbox (it denies them to the child), reported because
    /// a kernel that lets unprivileged users create them exposes more attack surface.
    pub user_namespaces: UserNamespaces,
}

/// Landlock as this kernel offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandlockSupport {
    /// `available`, `disabled` (built in but not enabled at boot: add `landlock` to the `lsm=`
    /// kernel parameter) or `absent` (not built into the kernel).
    pub state: &'static str,
    /// ABI version (1 = Linux 5.13 ... 4 = 6.7 adds TCP, 6 = 6.12 adds scopes).
    pub abi: Option<i32>,
    /// Filesystem rules (ABI 1+).
    pub filesystem: bool,
    /// Renaming and linking across directories (ABI 2+): without it the sandbox must deny them.
    pub refer: bool,
    /// Truncation rules (ABI 3+).
    pub truncate: bool,
    /// TCP `bind`/`connect` rules by port (ABI 4+).
    pub tcp: bool,
    /// Device ioctl rules (ABI 5+).
    pub ioctl_dev: bool,
    /// Scopes: abstract UNIX sockets and signals limited to the sandbox (ABI 6+).
    pub scopes: bool,
}

/// User namespace settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserNamespaces {
    /// `/proc/sys/user/max_user_namespaces` (0 disables them).
    pub max: Option<u64>,
    /// Debian's `kernel.unprivileged_userns_clone`, where present.
    pub unprivileged_clone: Option<bool>,
    /// Ubuntu's `kernel.apparmor_restrict_unprivileged_userns`, where present.
    pub apparmor_restricted: Option<bool>,
}

impl KernelSupport {
    /// Probes the running kernel.
    pub fn probe() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let has_field = |name: &str| status.lines().any(|l| l.starts_with(name));
        KernelSupport {
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            landlock: LandlockSupport::probe(),
            seccomp_filter: has_field("Seccomp:")
                && read_trimmed("/proc/sys/kernel/seccomp/actions_avail")
                    .is_some_and(|a| a.split_whitespace().any(|w| w == "errno")),
            no_new_privs: has_field("NoNewPrivs:"),
            rlimits: cfg!(target_os = "linux"),
            user_namespaces: UserNamespaces {
                max: read_trimmed("/proc/sys/user/max_user_namespaces").and_then(|v| v.parse().ok()),
                unprivileged_clone: read_trimmed("/proc/sys/kernel/unprivileged_userns_clone").map(|v| v != "0"),
                apparmor_restricted: read_trimmed("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                    .map(|v| v != "0"),
            },
        }
    }
}

impl LandlockSupport {
    /// Asks the kernel for its Landlock ABI version.
    pub fn probe() -> Self {
        match crate::sys::landlock_abi() {
            Ok(abi) => LandlockSupport {
                state: "available",
                abi: Some(abi),
                filesystem: abi >= 1,
                refer: abi >= 2,
                truncate: abi >= 3,
                tcp: abi >= 4,
                ioctl_dev: abi >= 5,
                scopes: abi >= 6,
            },
            Err(errno) => LandlockSupport {
                state: if errno == libc::EOPNOTSUPP { "disabled" } else { "absent" },
                abi: None,
                filesystem: false,
                refer: false,
                truncate: false,
                tcp: false,
                ioctl_dev: false,
                scopes: false,
            },
        }
    }
}

impl std::fmt::Display for KernelSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let ll = &self.landlock;
        writeln!(f, "kernel          {}", self.kernel)?;
        match ll.abi {
            Some(abi) => writeln!(f, "landlock        available, ABI {abi}")?,
            None => writeln!(f, "landlock        {}", ll.state)?,
        }
        writeln!(f, "  filesystem    {}", yes(ll.filesystem))?;
        writeln!(f, "  refer         {}", yes(ll.refer))?;
        writeln!(f, "  truncate      {}", yes(ll.truncate))?;
        writeln!(f, "  tcp           {}", yes(ll.tcp))?;
        writeln!(f, "  ioctl_dev     {}", yes(ll.ioctl_dev))?;
        writeln!(f, "  scopes        {}", yes(ll.scopes))?;
        writeln!(f, "seccomp filter  {}", yes(self.seccomp_filter))?;
        writeln!(f, "no_new_privs    {}", yes(self.no_new_privs))?;
        writeln!(f, "rlimits         {}", yes(self.rlimits))?;
        let un = &self.user_namespaces;
        write!(f, "user namespaces max={}", un.max.map_or("unknown".into(), |m| m.to_string()))?;
        if let Some(c) = un.unprivileged_clone {
            write!(f, ", unprivileged_userns_clone={}", yes(c))?;
        }
        if let Some(a) = un.apparmor_restricted {
            write!(f, ", apparmor_restrict_unprivileged_userns={}", yes(a))?;
        }
        writeln!(f)
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}
