//! `snaplab compare --transport resp`: every strategy's row runs as `snaplab serve` on a
//! unix socket and is driven, measured and verified like the Redis row; a server whose
//! dump is not point-in time fails that verification.

use std::process::{Command, Output};

fn snaplab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snaplab")).args(args).output().expect("the snaplab binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A short run on 2,000 keys: two writers, every kind of write, `args` added.
fn compare(json: &std::path::Path, args: &[&str]) -> Output {
    let mut all = vec![
        "compare",
        "--transport",
        "resp",
        "--no-redis",
        "--keys",
        "2000",
        "--value-size",
        "32",
        "--writers",
        "2",
        "--rate",
        "2000",
        "--baseline-ms",
        "500",
        "--mix",
        "overwrite=40,insert=20,delete=20,collection=20",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    snaplab(&all)
}

/// Through RESP, every strategy's dump verifies with the black-box checker (relaxed's at
/// its log's close), every row says `transport: "resp"`, the figures measured from outside
/// are there (load time from the server's log, CPU from INFO cpu), and the table says
/// which transport it used.
#[test]
fn every_strategy_verifies_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rows.json");
    let out = compare(&json, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let names: Vec<&str> = snaplab::registry().entries().iter().map(|e| e.name).collect();
    assert_eq!(rows.iter().map(|r| r["strategy"].as_str().unwrap()).collect::<Vec<_>>(), names);
    for row in &rows {
        assert_eq!(row["transport"], "resp", "{row}");
        assert_eq!(row["verified"], true, "{row}");
        for field in ["load_ms", "time_to_cut_ms", "save_ms", "cpu_saver_s", "cpu_writers_s", "latency_p99_us"] {
            assert!(row[field].is_number(), "{field} missing in {row}");
        }
    }
    // The check had writes to judge (a row on a loaded machine may see none in its save).
    assert!(rows.iter().any(|r| r["writes_during_save"].as_u64().unwrap() > 0), "{rows:?}");
    let table = text(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("TRANSPORT: resp (every row through a unix socket")), "{table}");
}

/// A server whose BGSAVE replies at once and takes its snapshot 200 ms later (a hidden
/// fault, `--serve-fault late-cut`) holds writes that started after BGSAVE returned: the
/// row fails verification through the socket, naming that rule, and `compare` exits 1.
#[test]
fn a_late_cut_behind_the_socket_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rows.json");
    let keep = dir.path().join("kept");
    let out =
        compare(&json, &["--strategies", "cow", "--serve-fault", "late-cut", "--out-dir", keep.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["verified"], false, "{}", rows[0]);
    let why = rows[0]["verify_error"].as_str().unwrap();
    assert!(why.contains("no write that started after BGSAVE returned is in the snapshot"), "{why}");
    assert!(why.contains("cow's dump is kept at"), "{why}");
    assert!(text(&out.stdout).lines().any(|l| l.starts_with("cow") && l.trim_end().ends_with("NO")));
}

/// `--serve-fault` only makes sense through the socket: with `inproc` it is refused.
#[test]
fn serve_fault_needs_the_resp_transport() {
    let out = snaplab(&["compare", "--keys", "10", "--transport", "inproc", "--serve-fault", "late-cut"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--serve-fault needs --transport resp"), "{}", text(&out.stderr));
}
