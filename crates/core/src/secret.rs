//! Secrets in configuration: only references, never literal values.
//!
//! A config file gets copied, committed and pasted into tickets; a secret in it leaks with it.
//! So a secret setting holds either the *name* of an environment variable (`"${VAR}"`) or a
//! command that prints the secret (`{ command = ["pass", "show", "crm/hubspot"] }`, a password
//! manager's CLI), and the value is read into a [`SecretString`] (zeroized on drop, redacted in
//! `Debug`) only when a connector is built.

use std::fmt;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use secrecy::zeroize::Zeroize;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A reference to a secret, as written in a config file: `"${HUBSPOT_TOKEN}"` or
/// `{ command = ["pass", "show", "crm/hubspot"] }`; or, for programs embedding ferry (the
/// demo), a value already in memory.
#[derive(Clone)]
pub struct SecretRef {
    source: SecretSource,
}

#[derive(Clone)]
enum SecretSource {
    Env(String),
    /// An argv: the program and its arguments, run without a shell.
    Command(Vec<String>),
    InMemory(SecretString),
}

/// Why a secret could not be had. Names the variable, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The setting holds something other than a `${VAR}` reference.
    #[error(
        "secrets are never written in the config file (it gets copied and shared): put the value \
         in an environment variable and write \"${{VARIABLE_NAME}}\" here, or name a command that \
         prints it: {{ command = [\"pass\", \"show\", \"crm/token\"] }}"
    )]
    Literal,
    /// The setting looks like a `${VAR}` reference but the name is not a valid variable name.
    /// Says what is wrong without repeating the name (it may be a secret wrapped in `${…}`).
    #[error(
        "\"${{…}}\" does not name a valid environment variable: {0} (a name holds only letters, \
         digits and underscores, and does not start with a digit, e.g. \"${{HUBSPOT_TOKEN}}\")"
    )]
    InvalidName(String),
    /// The referenced variable is not set (or not valid UTF-8).
    #[error("environment variable `{0}` is not set")]
    Unset(String),
    /// The referenced variable is set but empty.
    #[error("environment variable `{0}` is empty")]
    Empty(String),
    /// A `{ command = [...] }` table whose argv is empty or has an empty program name.
    #[error(
        "`command` must list the program and its arguments, e.g. [\"pass\", \"show\", \"crm/token\"]"
    )]
    EmptyCommand,
    /// The secret command could not be run, failed or printed nothing usable. Names the program
    /// and what went wrong, never what it printed (on stdout or stderr).
    #[error("secret command `{program}` {problem}")]
    Command {
        /// The program (`argv[0]`), without its arguments.
        program: String,
        /// What went wrong: "could not be started: …", "exited with exit status: 1", "printed nothing".
        problem: String,
    },
    /// The secret holds a line break or another control character: no credential does, and an
    /// HTTP header cannot carry one (it would fail every request as a transport error). Names
    /// where the secret came from (`environment variable `X`` or `secret command `pass``).
    #[error(
        "{0} holds a line break or another control character, which no credential contains \
         (a trailing newline copied with it?): remove it"
    )]
    ControlCharacter(String),
}

impl SecretRef {
    /// Parses `"${NAME}"`. A `${…}` with an invalid name, or `$NAME` without braces, is refused
    /// saying what is wrong; anything else is refused as a literal secret.
    pub fn parse(raw: &str) -> Result<SecretRef, SecretError> {
        let trimmed = raw.trim();
        let Some(name) = trimmed.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
            return match trimmed.strip_prefix('$') {
                Some(name) if name_problem(name).is_none() => Err(SecretError::InvalidName(
                    "the braces are missing: write \"${NAME}\", not \"$NAME\"".into(),
                )),
                _ => Err(SecretError::Literal),
            };
        };
        match name_problem(name) {
            Some(problem) => Err(SecretError::InvalidName(problem)),
            None => Ok(SecretRef::env(name)),
        }
    }

    /// A reference to the environment variable `var`. The name is not checked here (programs
    /// embedding ferry name their own variables); [`SecretRef::parse`] checks config files'.
    pub fn env(var: &str) -> SecretRef {
        SecretRef {
            source: SecretSource::Env(var.to_owned()),
        }
    }

    /// A command that prints the secret on stdout: `argv[0]` is the program, run without a
    /// shell. Refused when the argv or the program name is empty.
    pub fn command(argv: Vec<String>) -> Result<SecretRef, SecretError> {
        if argv.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(SecretError::EmptyCommand);
        }
        Ok(SecretRef {
            source: SecretSource::Command(argv),
        })
    }

    /// A secret already held in memory (never from a config file).
    pub fn in_memory(secret: SecretString) -> SecretRef {
        SecretRef {
            source: SecretSource::InMemory(secret),
        }
    }

    /// The environment variable's name, for a reference to one.
    pub fn var(&self) -> Option<&str> {
        match &self.source {
            SecretSource::Env(var) => Some(var),
            SecretSource::Command(_) | SecretSource::InMemory(_) => None,
        }
    }

    /// The command's argv, for a secret command.
    pub fn argv(&self) -> Option<&[String]> {
        match &self.source {
            SecretSource::Command(argv) => Some(argv),
            SecretSource::Env(_) | SecretSource::InMemory(_) => None,
        }
    }

    /// Reads the secret: from the environment, for a reference; by running the program, for a
    /// command (each call runs it once: connectors call this once, when they are built).
    pub fn resolve(&self) -> Result<SecretString, SecretError> {
        let var = match &self.source {
            SecretSource::Env(var) => var,
            SecretSource::Command(argv) => return run_command(argv),
            SecretSource::InMemory(secret) => return Ok(secret.clone()),
        };
        match std::env::var(var) {
            Ok(v) if v.is_empty() => Err(SecretError::Empty(var.clone())),
            Ok(mut v) if v.chars().any(char::is_control) => {
                v.zeroize();
                Err(SecretError::ControlCharacter(format!(
                    "environment variable `{var}`"
                )))
            }
            Ok(v) => Ok(SecretString::from(v)),
            Err(_) => Err(SecretError::Unset(var.clone())),
        }
    }
}

/// What is wrong with `name` as an environment variable's name, if anything. Never quotes the
/// name: a secret wrapped in `${…}` by mistake would be echoed.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Some("the name starts with a digit".into());
    }
    let bad = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_'))?;
    Some(match bad {
        ' ' => "the name contains a space".into(),
        c if c.is_whitespace() || c.is_control() => {
            "the name contains a line break, tab or other invisible character".into()
        }
        // One punctuation character says what to fix and gives nothing away.
        c if c.is_ascii_punctuation() => format!("the name contains `{c}`"),
        _ => "the name contains a character other than a letter, digit or underscore".into(),
    })
}

/// How long a secret command may run. Long enough for a person to answer a password manager's
/// passphrase prompt; a hung helper must not hang a scheduled sync forever.
pub const SECRET_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a secret command: stdin inherited (a password manager may ask for a passphrase on the
/// terminal), stdout captured, stderr discarded (tools print diagnostics that may quote the
/// secret or the vault's entries). One trailing newline is removed, as `pass` and `op read`
/// end their output with one. A command still running after [`SECRET_COMMAND_TIMEOUT`] is
/// killed.
fn run_command(argv: &[String]) -> Result<SecretString, SecretError> {
    run_command_within(argv, SECRET_COMMAND_TIMEOUT)
}

fn run_command_within(argv: &[String], timeout: Duration) -> Result<SecretString, SecretError> {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let fail = |problem: String| SecretError::Command {
        program: program.to_owned(),
        problem,
    };
    let mut child = Command::new(program)
        .args(&argv[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("could not be started: {e}")))?;
    // Read stdout beside the wait, so a command printing more than a pipe holds cannot block.
    // Output nobody collects any more (a timeout) is wiped by the reader itself.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            if let Err(mut unsent) = tx.send(buf) {
                unsent.0.zeroize();
            }
        });
    }
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        fail(format!(
            "did not finish within {} s and was stopped",
            timeout.as_secs()
        ))
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(timed_out());
            }
            Err(e) => return Err(fail(format!("could not be waited for: {e}"))),
        }
    };
    // A process the command left in the background may hold its stdout open: wait no longer
    // than the deadline for the end of the output.
    let left = deadline.saturating_duration_since(Instant::now());
    let stdout = rx.recv_timeout(left).map_err(|_| timed_out())?;
    let output = std::process::Output {
        status,
        stdout,
        stderr: Vec::new(),
    };
    let mut stdout = output.stdout;
    if !output.status.success() {
        stdout.zeroize();
        return Err(fail(format!("exited with {}", output.status)));
    }
    let mut text = match String::from_utf8(stdout) {
        Ok(text) => text,
        Err(e) => {
            e.into_bytes().zeroize();
            return Err(fail("printed something that is not UTF-8 text".into()));
        }
    };
    let end = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .map_or(text.len(), str::len);
    // Copied into an exactly sized buffer, so no reallocation leaves a copy behind, and the
    // captured output is wiped.
    if text[..end].chars().any(char::is_control) {
        text.zeroize();
        return Err(SecretError::ControlCharacter(format!(
            "the output of secret command `{program}`"
        )));
    }
    let secret = (end > 0).then(|| SecretString::from(&text[..end]));
    text.zeroize();
    secret.ok_or_else(|| fail("printed nothing".into()))
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::Env(var) => write!(f, "${{{var}}}"),
            SecretSource::Command(argv) => write!(
                f,
                "[secret printed by `{}`]",
                argv.first().map(String::as_str).unwrap_or_default()
            ),
            SecretSource::InMemory(_) => f.write_str("[in-memory secret]"),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretRefVisitor)
    }
}

/// Accepts `"${VAR}"` or `{ command = [...] }`. Error messages never echo a value: a string
/// typed where a reference belongs may be the secret itself.
struct SecretRefVisitor;

impl<'de> Visitor<'de> for SecretRefVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a reference to an environment variable, \"${VARIABLE_NAME}\", or a command that \
             prints the secret, { command = [\"program\", \"argument\", …] }",
        )
    }

    fn visit_str<E: de::Error>(self, raw: &str) -> Result<SecretRef, E> {
        SecretRef::parse(raw).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        let mut argv: Option<Vec<String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "command" || argv.is_some() {
                return Err(de::Error::custom(format!(
                    "unexpected key `{key}`: a secret table holds only `command`"
                )));
            }
            argv = Some(map.next_value()?);
        }
        let argv = argv.ok_or_else(|| de::Error::missing_field("command"))?;
        SecretRef::command(argv).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_env_references_are_accepted() {
        assert_eq!(
            SecretRef::parse("${HUBSPOT_TOKEN}").unwrap().var(),
            Some("HUBSPOT_TOKEN")
        );
        for literal in ["pat-na1-1234", "$pat-na1-1234", "{HUBSPOT_TOKEN}"] {
            assert_eq!(
                SecretRef::parse(literal).unwrap_err(),
                SecretError::Literal,
                "{literal}"
            );
        }
    }

    #[test]
    fn an_invalid_variable_name_is_named_as_such() {
        let problem = |raw: &str| match SecretRef::parse(raw) {
            Err(SecretError::InvalidName(problem)) => problem,
            other => panic!("{raw}: {other:?}"),
        };
        assert_eq!(problem("${HUBSPOT TOKEN}"), "the name contains a space");
        assert_eq!(problem("${}"), "the name is empty");
        assert_eq!(problem("${1ABC}"), "the name starts with a digit");
        assert_eq!(problem("${HUBSPOT-TOKEN}"), "the name contains `-`");
        assert!(problem("${A\nB}").contains("line break"));
        assert!(problem("$HUBSPOT_TOKEN").contains("braces"));
        let err = SecretRef::parse("${pat na1 s3cr3t}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("valid environment variable") && !err.contains("s3cr3t"),
            "{err}"
        );
    }

    #[test]
    fn a_secret_with_a_line_break_is_refused_naming_its_source() {
        // A variable no other test reads, set once: tests run in parallel threads.
        let var = "FERRY_TEST_SECRET_WITH_NEWLINE";
        // SAFETY: only this test reads or writes this variable.
        unsafe { std::env::set_var(var, "pat-na1-s3cr3t\n") };
        let err = SecretRef::env(var).resolve().unwrap_err();
        assert_eq!(
            err,
            SecretError::ControlCharacter(format!("environment variable `{var}`"))
        );
        assert!(!err.to_string().contains("s3cr3t"));
        let err = exposed(&sh("printf 'pat-na1-s3cr3t\\r\\nmore\\n'")).unwrap_err();
        assert!(
            err.contains("secret command `sh`") && err.contains("control character"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = exposed(&sh("printf 'a\\033]0;x\\007'")).unwrap_err();
        assert!(err.contains("control character"), "{err}");
    }

    #[test]
    fn a_literal_secret_is_not_echoed_in_the_error() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct C {
            token: SecretRef,
        }
        let err = serde_json::from_str::<C>(r#"{"token":"pat-na1-super-secret"}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("super-secret"), "{err}");
        assert!(err.contains("environment variable"), "{err}");
    }

    #[test]
    fn in_memory_secrets_are_not_debug_printed() {
        let r = SecretRef::in_memory(SecretString::from("hunter2"));
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&r.resolve().unwrap()),
            "hunter2"
        );
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Settings {
        token: SecretRef,
    }

    fn from_json(json: serde_json::Value) -> Result<SecretRef, String> {
        serde_json::from_value::<Settings>(json)
            .map(|s| s.token)
            .map_err(|e| e.to_string())
    }

    fn sh(script: &str) -> SecretRef {
        from_json(serde_json::json!({"token": {"command": ["sh", "-c", script]}})).unwrap()
    }

    fn exposed(r: &SecretRef) -> Result<String, String> {
        r.resolve()
            .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_command_prints_the_secret_and_one_trailing_newline_is_dropped() {
        let r = sh("printf 'pat-na1-from-vault\\n'");
        assert_eq!(r.argv().unwrap()[0], "sh");
        assert_eq!(exposed(&r).unwrap(), "pat-na1-from-vault");
        assert_eq!(exposed(&sh("printf 'a b\\r\\n'")).unwrap(), "a b");
        assert!(
            exposed(&sh("printf 'x\\n\\n'")).is_err(),
            "a second newline is refused"
        );
        assert_eq!(exposed(&sh("printf 'no-newline'")).unwrap(), "no-newline");
    }

    #[test]
    fn a_failing_command_is_named_but_its_output_never_shown() {
        let err = exposed(&sh("echo leaked-stdout; echo leaked-stderr >&2; exit 3")).unwrap_err();
        assert!(
            err.contains("`sh`") && err.contains("exit status: 3"),
            "{err}"
        );
        assert!(!err.contains("leaked"), "{err}");
        let err = exposed(&sh("printf '\\n'")).unwrap_err();
        assert!(err.contains("`sh` printed nothing"), "{err}");
        let err = exposed(&sh("true")).unwrap_err();
        assert!(err.contains("printed nothing"), "{err}");
        let err = exposed(&sh("printf '\\377\\376'")).unwrap_err();
        assert!(err.contains("not UTF-8"), "{err}");
        let missing =
            from_json(serde_json::json!({"token": {"command": ["ferry-surely-no-such-program", "--secret-arg"]}}))
                .unwrap();
        let err = exposed(&missing).unwrap_err();
        assert!(
            err.contains("`ferry-surely-no-such-program` could not be started")
                && !err.contains("--secret-arg"),
            "{err}"
        );
    }

    #[test]
    fn a_command_that_hangs_is_stopped_and_named() {
        let argv: Vec<String> = ["sh", "-c", "echo partial; sleep 30"]
            .map(String::from)
            .to_vec();
        let started = Instant::now();
        let err = run_command_within(&argv, Duration::from_millis(300))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not waited out"
        );
        assert!(err.contains("`sh` did not finish within"), "{err}");
        assert!(!err.contains("partial"), "{err}");
    }

    #[test]
    fn command_tables_are_checked() {
        let err = from_json(serde_json::json!({"token": {"command": []}})).unwrap_err();
        assert!(err.contains("must list the program"), "{err}");
        let err = from_json(serde_json::json!({"token": {"command": [""]}})).unwrap_err();
        assert!(err.contains("must list the program"), "{err}");
        let err = from_json(serde_json::json!({"token": {"cmd": ["pass"]}})).unwrap_err();
        assert!(err.contains("`cmd`"), "{err}");
        let err = from_json(serde_json::json!({"token": {}})).unwrap_err();
        assert!(err.contains("missing field `command`"), "{err}");
        let err = from_json(serde_json::json!({"token": "hunter2"})).unwrap_err();
        assert!(err.contains("command") && !err.contains("hunter2"), "{err}");
        // The command's Debug form names the program only; the resolved value is redacted.
        let r = sh("printf 'hunter2'");
        assert_eq!(format!("{r:?}"), "[secret printed by `sh`]");
        assert!(!format!("{:?}", r.resolve().unwrap()).contains("hunter2"));
    }

    #[test]
    fn unset_variable_is_named() {
        let r = SecretRef::env("FERRY_TEST_SURELY_UNSET_VAR");
        assert_eq!(
            r.resolve().unwrap_err().to_string(),
            "environment variable `FERRY_TEST_SURELY_UNSET_VAR` is not set"
        );
    }
}
