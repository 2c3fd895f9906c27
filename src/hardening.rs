//! Self-hardening: no core dumps, and a Landlock sandbox that forbids ferry filesystem writes.
//!
//! ferry's promise is that customer records never reach disk. The pipeline is written that way,
//! and `tests/no_disk.rs` checks it under strace; this module makes the kernel hold ferry to it,
//! so that a bug, a compromised dependency or a hostile vendor response exploiting one cannot
//! write a file either.
//!
//! - Core dumps are disabled at process start (`RLIMIT_CORE` 0, soft and hard, and
//!   `PR_SET_DUMPABLE` 0): a crash cannot spill the records in memory into a core file, and
//!   other processes of the same user cannot attach a debugger or read `/proc/<pid>/mem`.
//! - [`seal`] applies a Landlock ruleset that handles every filesystem *write* right (create,
//!   write, truncate, remove, rename, link, make directories, sockets, fifos, devices and
//!   symlinks) and grants them nowhere, except where the run is configured to write: the
//!   checkpoint, and `ferry sync`'s state file. Reads stay allowed (config, CA certificates, `/etc/resolv.conf`, `/proc`).
//!
//! Landlock restricts the calling thread and the threads it creates afterwards (the kernel's
//! all-threads flag needs Landlock ABI 8, Linux 7.0), so `main` seals before the async runtime
//! starts any thread, and [`seal`] reports a partial sandbox if other threads already exist.
//! Secret commands run before the seal, so a password manager can still update its own files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

/// What the process did to protect itself, for the summary and the JSON report.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The filesystem sandbox: `"enforced"`, `"partial"` or `"unavailable"`.
    pub landlock: &'static str,
    /// The kernel's Landlock ABI version, when the kernel has Landlock.
    pub abi: Option<i32>,
    /// Why it is partial or unavailable; empty when fully enforced.
    pub detail: String,
    /// Where the run may still write (beneath these directories or to these files).
    pub writable: Vec<PathBuf>,
    /// Whether core dumps are disabled (`RLIMIT_CORE` 0 and not dumpable).
    pub core_dumps_disabled: bool,
    /// Why core dumps could not be disabled; empty when they are.
    pub core_dumps_detail: String,
}

static CORE_DUMPS: OnceLock<Result<(), String>> = OnceLock::new();
static STATUS: OnceLock<Status> = OnceLock::new();

/// Disables core dumps for the whole process. Call first thing in `main`.
pub fn disable_core_dumps() {
    let _ = CORE_DUMPS.set(core_dumps_off());
}

#[cfg(target_os = "linux")]
fn core_dumps_off() -> Result<(), String> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, zero).map_err(|e| format!("setrlimit(RLIMIT_CORE, 0): {e}"))?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(|e| format!("prctl(PR_SET_DUMPABLE, 0): {e}"))
}

#[cfg(not(target_os = "linux"))]
fn core_dumps_off() -> Result<(), String> {
    Err("disabling core dumps is implemented for Linux only".into())
}

/// The sandbox status, once [`seal`] ran (`None` for commands that do not seal).
pub fn status() -> Option<&'static Status> {
    STATUS.get()
}

/// Forbids this process filesystem writes, except for the `files` it keeps (the checkpoint,
/// `ferry sync`'s state: each with its `.tmp` sibling and the rename between them). Best effort: on a kernel with an older Landlock the rights it
/// lacks stay unrestricted, and without Landlock nothing is; the returned status says which.
/// Must run before any thread is started.
pub fn seal(files: &[&Path]) -> &'static Status {
    let core = CORE_DUMPS
        .get()
        .cloned()
        .unwrap_or_else(|| Err("not attempted".into()));
    let mut status = landlock(files);
    status.core_dumps_disabled = core.is_ok();
    status.core_dumps_detail = core.err().unwrap_or_default();
    if status.landlock != "enforced" {
        tracing::warn!(
            landlock = status.landlock,
            "filesystem sandbox not fully enforced: {}",
            status.detail
        );
    }
    STATUS.get_or_init(|| status)
}

/// The directory a checkpoint's `.tmp` sibling is created in and renamed from.
fn checkpoint_dir(checkpoint: &Path) -> PathBuf {
    match checkpoint.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(target_os = "linux")]
fn landlock(files: &[&Path]) -> Status {
    use landlock::{
        ABI, AccessFs, LandlockStatus, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus,
    };

    // ABI 3 covers every write right (1: create, write, remove, make; 2: link or rename across
    // directories; 3: truncate). ABI 5's device ioctl right is not a write to disk, and handling
    // it would break terminal size queries on a newly opened tty.
    let handled = AccessFs::from_write(ABI::V3);
    // Creating `<path>.tmp`, writing it, and renaming it over `<path>` within one directory:
    // make a regular file, write and truncate it, remove (rename away) an entry. Landlock
    // grants rights on directory hierarchies, so this is as narrow as it gets: other regular
    // files beneath that directory are writable too (docs/security.md: use a directory of its own).
    let checkpoint_rights =
        AccessFs::MakeReg | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::RemoveFile;
    let mut writable = Vec::new();
    let mut notes = Vec::new();

    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);

    let result = (|| -> Result<_, landlock::RulesetError> {
        let mut ruleset = Ruleset::default().handle_access(handled)?.create()?;
        // Writing to /dev/null stores nothing; a library may open it for output.
        if let Ok(fd) = PathFd::new("/dev/null") {
            ruleset = ruleset.add_rule(PathBeneath::new(fd, AccessFs::WriteFile))?;
        }
        for path in files {
            let dir = checkpoint_dir(path);
            match PathFd::new(&dir) {
                Ok(fd) => {
                    ruleset = ruleset.add_rule(PathBeneath::new(fd, checkpoint_rights))?;
                    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
                    if !writable.contains(&dir) {
                        writable.push(dir);
                    }
                }
                Err(_) => notes.push(format!(
                    "the directory {} of {} does not exist, so no write is allowed there",
                    dir.display(),
                    path.display()
                )),
            }
        }
        ruleset.restrict_self()
    })();

    let (landlock, abi, mut detail) = match result {
        Err(e) => (
            "unavailable",
            None,
            format!("the ruleset could not be applied: {e}"),
        ),
        Ok(restriction) => {
            let abi = match restriction.landlock {
                LandlockStatus::Available {
                    effective_abi,
                    kernel_abi,
                } => Some(kernel_abi.unwrap_or(effective_abi as i32)),
                _ => None,
            };
            match (restriction.ruleset, restriction.landlock) {
                (RulesetStatus::FullyEnforced, _) => ("enforced", abi, String::new()),
                (RulesetStatus::PartiallyEnforced, _) => {
                    let mut missing = Vec::new();
                    if abi.is_some_and(|v| v < 2) {
                        missing.push("linking or renaming files across directories (ABI 2)");
                    }
                    if abi.is_some_and(|v| v < 3) {
                        missing.push("truncating existing files (ABI 3)");
                    }
                    (
                        "partial",
                        abi,
                        format!(
                            "this kernel's Landlock (ABI {}) cannot restrict {}",
                            abi.unwrap_or_default(),
                            missing.join(" or ")
                        ),
                    )
                }
                (RulesetStatus::NotEnforced, LandlockStatus::NotEnabled) => (
                    "unavailable",
                    None,
                    "the kernel has Landlock but it is not enabled at boot (add `landlock` to the \
                     `lsm=` kernel parameter)"
                        .to_owned(),
                ),
                (RulesetStatus::NotEnforced, LandlockStatus::NotImplemented) => (
                    "unavailable",
                    None,
                    "the kernel has no Landlock (Linux 5.13 or later built with \
                     CONFIG_SECURITY_LANDLOCK), or a seccomp filter (some container runtimes) \
                     blocks it"
                        .to_owned(),
                ),
                (RulesetStatus::NotEnforced, _) => (
                    "unavailable",
                    abi,
                    "the kernel refused every requested restriction".to_owned(),
                ),
            }
        }
    };
    // Threads that already existed are not restricted: then the sandbox is only partial.
    let landlock = if threads > 1 && landlock != "unavailable" {
        notes.push(format!(
            "{} before the sandbox and not restricted",
            ferry_core::report::count(threads as u64 - 1, "thread existed", "threads existed")
        ));
        "partial"
    } else {
        landlock
    };
    for note in notes {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(&note);
    }
    Status {
        landlock,
        abi,
        detail,
        writable,
        core_dumps_disabled: false,
        core_dumps_detail: String::new(),
    }
}

#[cfg(not(target_os = "linux"))]
fn landlock(_files: &[&Path]) -> Status {
    Status {
        landlock: "unavailable",
        abi: None,
        detail: "Landlock is a Linux feature; this platform has no equivalent in ferry".into(),
        writable: Vec::new(),
        core_dumps_disabled: false,
        core_dumps_detail: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seals one thread of the test process (Landlock binds only that thread and its future
    /// children) and checks that it can write the checkpoint and its `.tmp`, and nothing else.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_sealed_thread_writes_only_the_checkpoint() {
        use std::io::ErrorKind::PermissionDenied;

        let base = std::env::temp_dir().join(format!("ferry-landlock-{}", std::process::id()));
        let dir = base.join("checkpoints");
        std::fs::create_dir_all(&dir).unwrap();
        let outside = base.join("outside.txt");
        std::fs::write(&outside, b"before").unwrap();
        let checkpoint = dir.join("ck.json");
        let sealed = {
            let (checkpoint, outside, base) = (checkpoint.clone(), outside.clone(), base.clone());
            std::thread::spawn(move || {
                let status = seal(&[&checkpoint]).clone();
                if status.landlock == "unavailable" {
                    return status;
                }
                let tmp = ferry_core::checkpoint::temp_path(&checkpoint);
                std::fs::write(&tmp, b"{}").expect("the .tmp is writable");
                std::fs::rename(&tmp, &checkpoint).expect("the rename is allowed");
                std::fs::write(&tmp, b"{}").expect("the .tmp can be created again");
                std::fs::rename(&tmp, &checkpoint).expect("and renamed over the checkpoint");
                let denied = |r: std::io::Result<()>, what: &str| {
                    assert_eq!(r.unwrap_err().kind(), PermissionDenied, "{what}")
                };
                denied(std::fs::write(&outside, b"after"), "overwrite outside");
                denied(std::fs::write(base.join("new.txt"), b"x"), "create outside");
                denied(std::fs::remove_file(&outside), "delete outside");
                denied(std::fs::create_dir(base.join("d")), "mkdir outside");
                denied(
                    std::fs::create_dir(checkpoint.with_extension("d")),
                    "mkdir beside the checkpoint",
                );
                denied(
                    std::os::unix::fs::symlink(&outside, checkpoint.with_extension("lnk")),
                    "symlink beside the checkpoint",
                );
                assert!(std::fs::read(&outside).is_ok(), "reads stay allowed");
                status
            })
            .join()
            .unwrap()
        };
        assert!(
            ["enforced", "partial", "unavailable"].contains(&sealed.landlock),
            "{sealed:?}"
        );
        if sealed.landlock != "unavailable" {
            // The test harness has other threads, which the seal reports.
            assert!(sealed.detail.contains("threads existed"), "{sealed:?}");
            assert_eq!(std::fs::read(&outside).unwrap(), b"before");
            assert_eq!(std::fs::read(&checkpoint).unwrap(), b"{}");
            assert_eq!(sealed.writable, vec![std::fs::canonicalize(&dir).unwrap()]);
        }
        // This thread was never sealed.
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_relative_checkpoint_lives_in_the_working_directory() {
        assert_eq!(checkpoint_dir(Path::new("ck.json")), PathBuf::from("."));
        assert_eq!(
            checkpoint_dir(Path::new("/var/lib/ferry/ck.json")),
            PathBuf::from("/var/lib/ferry")
        );
    }
}
