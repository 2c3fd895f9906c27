//! End-to-end: the sandbox's `touch` hook (what `ferry sandbox`'s `touch` command and the sync
//! benchmark change records with) moves last-modified times the way each vendor's incremental
//! read sees: for every vendor as the source, after a first `ferry sync`, touching every 10th
//! company and contact makes the next sync read exactly those, and write nothing new.

mod common;

use std::time::Duration;

use common::{all_credentials, count as n, emulator_table, industry_table, object, run_config};
use ferry_sandbox::Limits;
use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::{Mess, generate};

const OBJECTS: [&str; 2] = ["companies", "contacts"];

/// One source vendor into `sink`: first sync, every 10th record touched, an hour on a sync.
async fn touched_records_are_what_the_next_sync_reads(source: &str, sink: &str) {
    let (from, to) = (
        ferry_sandbox::emulator(source).expect("source emulator"),
        ferry_sandbox::emulator(sink).expect("sink emulator"),
    );
    let org = (from.build)(Faults::default(), Limits::Unlimited);
    org.seed(&generate(60, 5, &Mess::none()));
    let sink_state = (to.build)(Faults::default(), Limits::Unlimited);
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let served_source = ferry_sandbox::serve(from.vendor, org.router(), any)
        .await
        .expect("serve source");
    let served_sink = ferry_sandbox::serve(to.vendor, sink_state.router(), any)
        .await
        .expect("serve sink");
    let dir =
        std::env::temp_dir().join(format!("ferry-sync-touch-{source}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test dir");
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n\n{}\n{}\n[migration]\nobjects = {OBJECTS:?}\n\n[sync]\nstate = {:?}\n\n{}\n",
            emulator_table("source", source, &served_source.base_url),
            emulator_table("sink", sink, &served_sink.base_url),
            dir.join("state.json").display().to_string(),
            industry_table(&from, &to),
        ),
    )
    .expect("write config");
    let config = config.to_string_lossy().into_owned();

    let (code, first, stderr) = run_config("sync", &config, &all_credentials()).await;
    assert_eq!(code, 0, "{source}: {first:#}\n{stderr}");
    let touched: Vec<u64> = OBJECTS.iter().map(|o| org.touch(o, 10) as u64).collect();
    let expected: Vec<u64> = OBJECTS
        .iter()
        .map(|o| org.count(o).div_ceil(10) as u64)
        .collect();
    assert_eq!(touched, expected, "{source}");
    // The next sync an hour on, as an hourly one would run: past every connector's overlap,
    // and never in the second of the changes (a read that ends at the vendor's clock in whole
    // seconds, as HubSpot's does, leaves a change in the second it starts to the sync after).
    org.advance_clock(Duration::from_secs(3600));
    sink_state.advance_clock(Duration::from_secs(3600));
    let (code, second, stderr) = run_config("sync", &config, &all_credentials()).await;
    assert_eq!(code, 0, "{source}: {second:#}\n{stderr}");
    for (name, touched) in OBJECTS.iter().zip(&touched) {
        let o = object(&second, name);
        assert_eq!(o["sync"]["read"], "incremental", "{source}: {o:#}");
        assert_eq!(
            (n(o, "read"), n(o, "created"), n(o, "verified")),
            (*touched, 0, *touched),
            "{source}: {o:#}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn touching_every_10th_record_is_what_the_next_sync_reads_for_every_source() {
    for source in ["hubspot", "salesforce", "pipedrive", "zoho", "dynamics"] {
        let sink = if source == "salesforce" {
            "hubspot"
        } else {
            "salesforce"
        };
        touched_records_are_what_the_next_sync_reads(source, sink).await;
    }
}
