//! Writing to stdout and stderr without panicking when the reader has gone (`ferry plan |
//! head -1`, `ferry migrate 2>&1 | head -1`).
//!
//! `print!` and `println!` panic when stdout is a closed pipe (Rust ignores SIGPIPE, so the
//! write fails with EPIPE), which ends the process with exit code 101 and a panic message.
//! Every write to stdout goes through [`write`] instead (the crate's `print!`/`println!`
//! macros call it): once the reader is gone, further output is dropped and the command goes
//! on to exit with its own code.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout cannot be written any more; later output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `args` to stdout and flushes; drops the output if stdout is closed or failing.
pub fn write(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            // A full disk or a revoked terminal: say so once, then carry on without stdout.
            eprintln!("ferry: cannot write to stdout ({e}); further output is dropped");
        }
    }
}

/// Writes `args` to stderr; drops them if stderr is closed or failing. Messages on stderr are
/// for a person watching: when nobody reads them any more, the run still ends with its own
/// exit code instead of a panic (`eprint!`/`eprintln!` panic on EPIPE like `print!`).
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(args).and_then(|()| stderr.flush());
}

/// Whether stderr gets bars and colours: only on a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>). Otherwise progress is plain
/// periodic lines and logs carry no escape codes, as a CI log or a file wants.
pub fn styled_stderr() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
