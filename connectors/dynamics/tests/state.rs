//! `[sync] state = "sink"` on Dataverse against the emulator, over real HTTP on loopback: the
//! sync state kept as an environment variable (definition and value), replaced only at the
//! version this run read (`If-Match`, 412 otherwise), at most 2,000 characters, every request
//! counted like the rest of the sink's.

mod common;

use common::{config, start};
use ferry_core::Sink;
use ferry_core::state_store::StoreError;
use ferry_dynamics::DynamicsSink;
use ferry_sandbox::dynamics::Options;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_is_an_environment_variable_replaced_only_at_its_version() {
    let (_emulator, running) = start(Options::default()).await;
    let sink = DynamicsSink::new(config(&running.base_url), "sink").expect("sink");
    let store = sink
        .state_store("ferry_state_00112233aabbccdd")
        .expect("Dataverse keeps a state");
    assert_eq!(
        store.name(),
        "dynamics environment variable ferry_state_00112233aabbccdd"
    );
    assert_eq!(store.capacity(), Some(2_000));
    let stats = sink.http_stats().expect("counted");

    assert_eq!(store.read().expect("read"), None, "nothing yet");
    let before = stats.snapshot().0;
    let first = store.write("{\"a\":1}", None).expect("created");
    // Find the definition, create it, find a value, create it.
    assert_eq!(stats.snapshot().0 - before, 4, "counted requests");
    let before = stats.snapshot().0;
    let read = store.read().expect("read").expect("kept");
    assert_eq!(stats.snapshot().0 - before, 1, "one request a read");
    assert_eq!(read.text, "{\"a\":1}");
    assert_eq!(read.version, first);

    // Creating again, as a second run that read "nothing" would: refused.
    assert!(matches!(
        store.write("{\"b\":1}", None),
        Err(StoreError::Conflict { .. })
    ));
    let before = stats.snapshot().0;
    let second = store.write("{\"a\":2}", Some(&first)).expect("replaced");
    assert_eq!(stats.snapshot().0 - before, 1, "one PATCH a replacement");
    assert_ne!(second, first);
    // A writer holding the old version lost the race: refused, and the document stays.
    let err = store.write("{\"a\":3}", Some(&first)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(
        err.to_string().contains("ferry_state_00112233aabbccdd"),
        "{err}"
    );
    assert_eq!(store.read().unwrap().unwrap().text, "{\"a\":2}");

    // Longer than the value column holds: refused before any request, naming both sizes.
    let err = store.write(&"x".repeat(2_001), Some(&second)).unwrap_err();
    assert!(
        err.to_string().contains("2000") && err.to_string().contains("2001"),
        "{err}"
    );

    // The state of another configuration is another variable.
    let other = sink.state_store("ferry_state_ffffffffffffffff").unwrap();
    assert_eq!(other.read().unwrap(), None);
}
