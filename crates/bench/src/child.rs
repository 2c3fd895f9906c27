//! Child processes measured by `wait4(2)`: wall time, user and system CPU time, peak RSS.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What one child cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// From spawn to exit.
    pub wall: Duration,
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub sys: Duration,
    /// Peak resident set size, in KiB.
    pub max_rss_kib: u64,
    /// The exit code, or 128 + the signal that ended it.
    pub code: i32,
}

impl Usage {
    /// User plus system time.
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// Waits for `child` (spawned at `started`), killing it once `timeout` has passed, and returns
/// its own resource usage. `Err` if it had to be killed.
pub fn wait(child: &mut Child, started: Instant, timeout: Duration) -> Result<Usage> {
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    let mut killed = false;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain old data, for which all-zero bytes are a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 only writes through the two pointers, which point to live locals of the
        // right types; `pid` is our own unreaped child, so no other process can be affected.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            let measured = Usage {
                wall: started.elapsed(),
                user: timeval(usage.ru_utime),
                sys: timeval(usage.ru_stime),
                max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
                code,
            };
            if killed {
                bail!("killed after the {} s timeout", timeout.as_secs());
            }
            return Ok(measured);
        }
        if reaped < 0 {
            return Err(std::io::Error::last_os_error()).context("wait4");
        }
        if !killed && started.elapsed() > timeout {
            // Not reaped yet, so the pid is still our child's.
            let _ = child.kill();
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asks `child` to stop with SIGTERM, then waits for it (SIGKILL after 15 s).
pub fn terminate(child: &mut Child, started: Instant) -> Result<Usage> {
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    // SAFETY: kill(2) with our own unreaped child's pid and a valid signal number.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = started.elapsed() + Duration::from_secs(15);
    wait(child, started, deadline)
}

/// CPU time `pid` has used so far (user + system), from `/proc/PID/stat`.
pub fn cpu_so_far(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain numbers.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0)?;
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / ticks,
    ))
}

/// Reads all of a pipe in a thread, so that a chatty child never blocks on a full pipe.
pub fn drain(pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(pipe).read_to_string(&mut text);
        text
    })
}

/// Reads lines of `stdout` until one equals or starts with `until`, within `timeout`; returns
/// the lines read, and the lines that follow as they come (read in the background, so the
/// child never blocks on a full pipe even when nobody takes them).
pub fn lines_until(
    stdout: ChildStdout,
    until: &str,
    timeout: Duration,
) -> Result<(Vec<String>, mpsc::Receiver<String>)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Once nobody listens, the send fails: keep reading so the child never blocks.
            let _ = tx.send(line);
        }
    });
    let lines = next_line(&rx, |l| l.starts_with(until), timeout)
        .with_context(|| format!("waiting for `{until}`"))?;
    Ok((lines, rx))
}

/// Takes lines from `rx` until one `done` accepts, within `timeout`; returns them all.
pub fn next_line(
    rx: &mpsc::Receiver<String>,
    done: impl Fn(&str) -> bool,
    timeout: Duration,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let finished = done(&line);
                lines.push(line);
                if finished {
                    return Ok(lines);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("no answer within {} s", timeout.as_secs())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the process ended:\n{}", lines.join("\n"))
            }
        }
    }
}
