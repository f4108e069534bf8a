//! Promises of the CI script (`.ci/run`), checked where a change to it would break them.

use std::path::Path;

/// `.ci/run` kills no process by name (`pkill`, `killall`): on a shared machine that stops
/// every redis-server, not only the package's service; it stops the service by its name.
#[test]
fn ci_script_kills_nothing_by_name() {
    let script = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run")).unwrap();
    for line in script.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for word in ["pkill", "killall"] {
            assert!(!line.split_whitespace().any(|w| w == word), ".ci/run kills by name: {line}");
        }
    }
    assert!(script.contains("service redis-server stop"), ".ci/run no longer stops the redis-server service");
}
