//! `docs/scheduled-sync.md` is a recipe operators copy: its config, GitHub Actions workflow,
//! crontab line, secret command and Kubernetes manifests are parsed here and checked to hang
//! together: the state kept between runs is the one the config names, every secret the config
//! references is provided (from a secret store, never a literal), each scheduler keeps runs
//! apart, and the config is one ferry accepts.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

/// The fenced code blocks of the page: (info string, text), in order.
fn blocks() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/scheduled-sync.md"
    ))
    .expect("docs/scheduled-sync.md");
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in page.lines() {
        match (open.take(), line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(block), Some(_)) => blocks.push(block),
            (Some((info, mut text)), None) => {
                text.push_str(line);
                text.push('\n');
                open = Some((info, text));
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code block");
    blocks
}

/// The only block whose info string is `info`.
fn block(info: &str) -> String {
    let found: Vec<String> = blocks()
        .into_iter()
        .filter(|(i, _)| i == info)
        .map(|(_, text)| text)
        .collect();
    assert_eq!(found.len(), 1, "one ```{info} block expected");
    found.into_iter().next().expect("one block")
}

/// The `yaml` blocks, each parsed into its documents.
fn yaml_blocks() -> Vec<Vec<Yaml>> {
    blocks()
        .into_iter()
        .filter(|(info, _)| info == "yaml")
        .map(|(_, text)| YamlLoader::load_from_str(&text).expect("valid YAML"))
        .collect()
}

/// The environment variables a config references as `"${NAME}"`.
fn env_refs(config: &str) -> BTreeSet<String> {
    config
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// `[sync] state` of a config.
fn state_path(config: &str) -> String {
    let value: toml::Value = toml::from_str(config).expect("the config is TOML");
    value["sync"]["state"]
        .as_str()
        .expect("[sync] state")
        .to_owned()
}

fn parent(path: &str) -> String {
    Path::new(path)
        .parent()
        .expect("a directory")
        .to_string_lossy()
        .into_owned()
}

/// Whether `schedule` is a five-field cron schedule whose fields are numbers, ranges, lists,
/// steps or `*` within each field's bounds.
fn is_cron(schedule: &str) -> bool {
    let bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    fields.len() == 5
        && fields.iter().zip(bounds).all(|(field, (low, high))| {
            field.split(',').all(|part| {
                let (range, step) = part.split_once('/').unwrap_or((part, "1"));
                let in_bounds = |n: &str| n.parse::<u32>().is_ok_and(|n| (low..=high).contains(&n));
                let range_ok = range == "*"
                    || match range.split_once('-') {
                        Some((a, b)) => in_bounds(a) && in_bounds(b),
                        None => in_bounds(range),
                    };
                range_ok && step.parse::<u32>().is_ok_and(|s| s > 0)
            })
        })
}

fn str_of<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {yaml:?}"))
}

fn list<'a>(yaml: &'a Yaml, what: &str) -> &'a [Yaml] {
    yaml.as_vec()
        .unwrap_or_else(|| panic!("{what} is not a list: {yaml:?}"))
}

#[test]
fn the_schedule_checker_tells_good_from_bad() {
    for good in ["17 * * * *", "*/15 0-6 * * 1-5", "0 3 1,15 * 0"] {
        assert!(is_cron(good), "{good}");
    }
    for bad in [
        "17 * * *",
        "60 * * * *",
        "* 24 * * *",
        "*/0 * * * *",
        "x * * * *",
    ] {
        assert!(!is_cron(bad), "{bad}");
    }
}

#[test]
fn the_github_workflow_keeps_the_state_the_config_names_and_passes_every_secret() {
    let config = block("toml");
    let state_dir = parent(&state_path(&config));
    let secrets = env_refs(&config);
    assert!(!secrets.is_empty(), "the config references its secrets");

    let workflow = &yaml_blocks()[0][0];
    assert_eq!(str_of(&workflow["name"], "name"), "CRM sync");
    let schedules = list(&workflow["on"]["schedule"], "on.schedule");
    assert!(!schedules.is_empty());
    for schedule in schedules {
        assert!(is_cron(str_of(&schedule["cron"], "cron")), "{schedule:?}");
    }
    // One run at a time, and a running sync is never cancelled for a queued one.
    assert!(workflow["concurrency"]["group"].as_str().is_some());
    assert_eq!(
        workflow["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false)
    );

    let steps = list(&workflow["jobs"]["sync"]["steps"], "steps");
    let uses = |action: &str| -> Vec<&Yaml> {
        steps
            .iter()
            .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
            .collect()
    };

    // The sync step: secrets from the secret store only, the report as JSON into a file.
    let sync = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("sync"))
        .expect("a step with id sync");
    let run = str_of(&sync["run"], "the sync step's run");
    assert!(
        run.contains("ferry sync --config ferry.toml --report json > "),
        "{run}"
    );
    assert!(run.contains(&format!("mkdir -p {state_dir}")), "{run}");
    let env = sync["env"].as_hash().expect("the sync step's env");
    let given: BTreeSet<String> = env
        .keys()
        .map(|k| str_of(k, "env name").to_owned())
        .collect();
    assert_eq!(
        given, secrets,
        "every secret the config references, no other"
    );
    for (name, value) in env {
        let name = str_of(name, "env name");
        assert_eq!(
            str_of(value, name),
            format!("${{{{ secrets.{name} }}}}"),
            "{name} comes from the repository's secrets"
        );
    }
    let report = run
        .split("> ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the report's file");

    // The state: restored before, saved after whatever happened, the same directory.
    let restore = uses("actions/cache/restore@");
    let save = uses("actions/cache/save@");
    assert_eq!((restore.len(), save.len()), (1, 1));
    assert_eq!(
        str_of(&restore[0]["with"]["path"], "restore path"),
        state_dir
    );
    assert_eq!(str_of(&save[0]["with"]["path"], "save path"), state_dir);
    assert_eq!(save[0]["if"].as_str(), Some("always()"));
    let restore_keys = str_of(&restore[0]["with"]["restore-keys"], "restore-keys");
    assert!(
        str_of(&save[0]["with"]["key"], "save key").starts_with(restore_keys),
        "the next run restores what this one saves"
    );

    // The report kept whatever happened; someone told when it failed.
    let upload = uses("actions/upload-artifact@");
    assert_eq!(upload.len(), 1);
    assert_eq!(upload[0]["if"].as_str(), Some("always()"));
    assert_eq!(str_of(&upload[0]["with"]["path"], "artifact path"), report);
    assert!(
        steps.iter().any(|s| s["if"].as_str() == Some("failure()")),
        "a step that reports a failure"
    );
}

#[test]
fn the_crontab_line_runs_a_sync_on_a_valid_schedule() {
    let crontab = block("crontab");
    let lines: Vec<&str> = crontab
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(lines.len(), 1, "{crontab}");
    let fields: Vec<&str> = lines[0].splitn(6, ' ').collect();
    assert!(is_cron(&fields[..5].join(" ")), "{}", lines[0]);
    let command = fields[5];
    assert!(command.contains("ferry sync --config ferry.toml --report json"));
    // cron turns a bare `%` into a newline.
    assert!(
        command
            .match_indices('%')
            .all(|(i, _)| command[..i].ends_with('\\')),
        "{command}"
    );
}

#[test]
fn each_tenants_cronjob_mounts_its_config_state_and_secrets() {
    let documents = &yaml_blocks()[1];
    let kind = |kind: &str| -> &Yaml {
        let found: Vec<&Yaml> = documents
            .iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect();
        assert_eq!(found.len(), 1, "one {kind}");
        found[0]
    };
    let (config_map, claim, cron_job) = (
        kind("ConfigMap"),
        kind("PersistentVolumeClaim"),
        kind("CronJob"),
    );
    let namespace = str_of(&cron_job["metadata"]["namespace"], "namespace");
    for d in documents {
        assert_eq!(d["metadata"]["namespace"].as_str(), Some(namespace));
    }

    let config = str_of(&config_map["data"]["ferry.toml"], "ferry.toml");
    let state = state_path(config);
    let secrets = env_refs(config);

    assert_eq!(cron_job["apiVersion"].as_str(), Some("batch/v1"));
    let spec = &cron_job["spec"];
    assert!(is_cron(str_of(&spec["schedule"], "schedule")));
    assert_eq!(spec["concurrencyPolicy"].as_str(), Some("Forbid"));
    let job = &spec["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"].as_i64(), Some(0));
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let containers = list(&pod["containers"], "containers");
    assert_eq!(containers.len(), 1, "one ferry per tenant");
    let ferry = &containers[0];
    assert_eq!(
        ferry["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "ferry writes nothing but its state"
    );

    // Mounts: the config read-only from the ConfigMap, the state's directory from the claim.
    let mount_of = |volume: &str| -> (String, bool) {
        let mount = list(&ferry["volumeMounts"], "volumeMounts")
            .iter()
            .find(|m| m["name"].as_str() == Some(volume))
            .unwrap_or_else(|| panic!("a mount of {volume}"));
        (
            str_of(&mount["mountPath"], "mountPath").to_owned(),
            mount["readOnly"].as_bool() == Some(true),
        )
    };
    let volume = |name: &str| -> &Yaml {
        list(&pod["volumes"], "volumes")
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("a volume {name}"))
    };
    let (config_dir, read_only) = mount_of("config");
    assert!(read_only);
    assert_eq!(
        volume("config")["configMap"]["name"].as_str(),
        config_map["metadata"]["name"].as_str()
    );
    let (state_dir, read_only) = mount_of("state");
    assert!(!read_only);
    assert_eq!(state_dir, parent(&state));
    assert_eq!(
        volume("state")["persistentVolumeClaim"]["claimName"].as_str(),
        claim["metadata"]["name"].as_str()
    );

    let args: Vec<&str> = list(&ferry["args"], "args")
        .iter()
        .map(|a| str_of(a, "arg"))
        .collect();
    let config_path = format!("{config_dir}/ferry.toml");
    assert_eq!(
        args,
        ["sync", "--config", config_path.as_str(), "--report", "json"]
    );

    // Secrets: every reference of the config, each from the tenant's Secret, none literal; the
    // Secret is the one the page's `kubectl create secret` makes, with the same keys.
    let env = list(&ferry["env"], "env");
    let names: BTreeSet<String> = env
        .iter()
        .map(|e| str_of(&e["name"], "env name").to_owned())
        .collect();
    assert_eq!(names, secrets);
    let create = block("sh");
    let secret_name = create
        .split("create secret generic ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("kubectl create secret generic NAME");
    for e in env {
        assert!(e["value"].is_badvalue(), "a literal secret: {e:?}");
        let reference = &e["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"].as_str(), Some(secret_name));
        assert_eq!(reference["key"].as_str(), e["name"].as_str());
        let key = str_of(&e["name"], "env name");
        assert!(create.contains(&format!("--from-literal={key}=\"${key}\"")));
    }
}

/// The page's configs are ones ferry accepts: `ferry check` gets past loading them (with
/// their secrets set and the state's directory in place) to the network, which the test
/// machine does not reach, so it fails there and not on the config.
#[tokio::test(flavor = "multi_thread")]
async fn ferry_accepts_the_pages_configs() {
    let documents = &yaml_blocks()[1];
    let in_cluster = documents
        .iter()
        .find_map(|d| d["data"]["ferry.toml"].as_str())
        .expect("the ConfigMap's ferry.toml")
        .to_owned();
    for (label, config) in [
        ("the CI config", block("toml")),
        ("the ConfigMap", in_cluster),
    ] {
        let dir = std::env::temp_dir().join(format!(
            "ferry-scheduled-docs-{}-{}",
            std::process::id(),
            label.len()
        ));
        let state = state_path(&config);
        let local_state = dir.join("state").join("state.json");
        std::fs::create_dir_all(dir.join("state")).expect("state dir");
        let config = config.replace(&state, &local_state.to_string_lossy());
        let path = dir.join("ferry.toml");
        std::fs::write(&path, &config).expect("write config");
        let env: Vec<(&str, String)> = env_refs(&config)
            .into_iter()
            .map(|name| (&*name.leak(), "not-a-real-secret-0123456789".to_owned()))
            .collect();
        let out = common::ferry(
            &[
                "check",
                "--config",
                &path.to_string_lossy(),
                "--deadline",
                "20",
            ],
            &env,
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_ne!(out.status.code(), Some(2), "{label}: {stdout}{stderr}");
        assert!(stdout.contains(": valid"), "{label}: {stdout}{stderr}");
    }
}
