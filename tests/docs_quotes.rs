//! `docs/connectors.md` quotes the code; these tests keep it true.
//!
//! - Every fenced Rust block whose first line is `// from <path>` must appear in that file, its
//!   lines in order and contiguous, after whitespace is normalised and comment-only lines
//!   (doc comments included) and `#[derive(…)]` lines are left out on both sides. Blocks
//!   without the marker are outlines or templates, and the page says so.
//! - The fault table lists every fault name the sandbox parses, and nothing else.
//! - The "add a vendor" checklist's registry lists are one line per vendor, as it says.

use std::collections::BTreeSet;
use std::path::Path;

const PAGE: &str = "docs/connectors.md";
const MARKER: &str = "// from ";

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// A line as compared: whitespace runs collapsed; `None` for lines that are left out.
fn normalised(line: &str) -> Option<String> {
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    (!line.is_empty() && !line.starts_with("//") && !line.starts_with("#[derive(")).then_some(line)
}

/// Each fenced Rust block of `markdown`: its first line's number (from 1) and its lines.
fn rust_blocks(markdown: &str) -> Vec<(usize, Vec<&str>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Vec<&str>)> = None;
    for (n, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```rust") => current = Some((n + 2, Vec::new())),
            Some(_) if fence.starts_with("```") => blocks.extend(current.take()),
            Some((_, lines)) => lines.push(line),
            None => {}
        }
    }
    blocks
}

/// Where `needle` occurs in `haystack` as a contiguous run, if it does.
fn find_run(haystack: &[String], needle: &[String]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn quoted_code_is_a_copy_of_the_code() {
    let page = read(PAGE);
    let mut quotes = 0;
    let mut problems = Vec::new();
    for (line, block) in rust_blocks(&page) {
        let Some(path) = block
            .first()
            .and_then(|l| l.trim().strip_prefix(MARKER))
            .map(str::trim)
        else {
            continue;
        };
        quotes += 1;
        let code: Vec<String> = read(path).lines().filter_map(normalised).collect();
        let quoted: Vec<String> = block[1..].iter().filter_map(|l| normalised(l)).collect();
        if quoted.is_empty() {
            problems.push(format!("{PAGE}:{line}: the quote of {path} is empty"));
            continue;
        }
        if find_run(&code, &quoted).is_none() {
            // Name the first line that breaks the run, for whoever fixes the page.
            let mut longest = 0;
            for start in 0..code.len() {
                let n = code[start..]
                    .iter()
                    .zip(&quoted)
                    .take_while(|(a, b)| a == b)
                    .count();
                longest = longest.max(n);
            }
            problems.push(format!(
                "{PAGE}:{line}: the quote is not in {path}; the longest run that is ends before \
                 `{}`",
                quoted[longest.min(quoted.len() - 1)]
            ));
        }
    }
    assert!(
        quotes >= 10,
        "{PAGE} quotes only {quotes} blocks: was the `{MARKER}<path>` marker changed?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The names the sandbox's fault parser knows, from its own error for an unknown one (the list
/// the operator sees, so it is the one the page must match).
fn parsed_fault_names() -> BTreeSet<String> {
    let err = ferry_sandbox::faults::Faults::parse("no-such-fault")
        .expect_err("an unknown fault is refused");
    let known = err
        .split_once("(known: ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the parser's error no longer lists the known faults: {err}"));
    let names: BTreeSet<String> = known.split(", ").map(str::to_owned).collect();
    for name in ferry_sandbox::faults::NAMES {
        assert!(names.contains(*name), "{name} missing from `{err}`");
    }
    names
}

/// The first-column names of the table under the page's "Fault injection" heading.
fn documented_fault_names(page: &str) -> BTreeSet<String> {
    let section = page
        .split("\n### ")
        .find(|s| s.starts_with("Fault injection"))
        .expect("a `### Fault injection` section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(|name| name.split([':', '[']).next().unwrap_or(name).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_fault_table_lists_every_fault_the_sandbox_parses() {
    let parsed = parsed_fault_names();
    let documented = documented_fault_names(&read(PAGE));
    let missing: Vec<_> = parsed.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&parsed).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "{PAGE}'s fault table: missing {missing:?}, not parsed by the sandbox {stale:?}"
    );
}

/// The vendors of `emulators![…]` in the sandbox.
fn emulator_list() -> Vec<String> {
    let lib = read("crates/sandbox/src/lib.rs");
    let list = lib
        .lines()
        .find_map(|l| l.strip_prefix("emulators![")?.strip_suffix("];"))
        .expect("an `emulators![…];` line in crates/sandbox/src/lib.rs");
    list.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_vendor_is_one_line_in_each_registry_list() {
    let vendors = emulator_list();
    let listed: Vec<&str> = ferry_sandbox::emulators()
        .iter()
        .map(|e| e.vendor)
        .collect();
    assert_eq!(vendors, listed, "`emulators![…]` is the emulator list");
    let registry = read("src/connectors.rs");
    let manifest = read("Cargo.toml");
    let page = read(PAGE);
    for vendor in &vendors {
        let call = format!("ferry_{vendor}::spec(),");
        assert_eq!(
            registry.lines().filter(|l| l.trim() == call).count(),
            1,
            "src/connectors.rs: one `{call}` line in `all()`"
        );
        let dependency = format!("ferry-{vendor} = {{ path = \"connectors/{vendor}\" }}");
        assert!(
            manifest.lines().any(|l| l.trim() == dependency),
            "Cargo.toml: `{dependency}`"
        );
    }
    assert_eq!(
        registry.matches("::spec(),").count(),
        vendors.len(),
        "src/connectors.rs registers a connector without an emulator (or the other way)"
    );
    // The checklist shows the same three lines.
    for line in [
        "emulators![hubspot, salesforce, dynamics, pipedrive, zoho, acme];",
        "ferry_acme::spec(),",
        "ferry-acme = { path = \"connectors/acme\" }",
    ] {
        assert!(
            page.lines().any(|l| l.trim() == line),
            "{PAGE}: the checklist shows `{line}` on a line of its own"
        );
    }
    assert!(
        page.contains(&format!("emulators![{}];", vendors.join(", ")).replace("];", ", acme];")),
        "{PAGE}: the checklist's `emulators![…]` line is today's list plus acme"
    );
}

/// The binary knows no vendor: what differs per vendor (permission advice, account settings)
/// comes from each connector's spec through the registry. No `"vendor" =>` arm or
/// `== "vendor"` comparison in the non-test code of `src/`.
#[test]
fn the_binary_matches_on_no_vendor_name() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read src/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no source files in src/");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read a source file");
        // Unit tests may name vendors: they build example configs.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for spec in ferry_sandbox::emulators() {
            for pattern in [
                format!("\"{}\" =>", spec.vendor),
                format!("\"{}\" |", spec.vendor),
                format!("== \"{}\"", spec.vendor),
            ] {
                for (n, line) in code.lines().enumerate() {
                    if line.contains(&pattern) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "vendor branches in the binary:\n{}",
        found.join("\n")
    );
}
