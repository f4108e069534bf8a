//! The `snaplab` command-line tool, run as a user runs it: exit codes, what it prints,
//! and that `save` and `compare` produce dumps that verify.

use std::path::Path;
use std::process::{Command, Output};

use snaplab_core::rdb;

fn snaplab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snaplab")).args(args).output().expect("the snaplab binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A small dump written by our own `generate` command, in `dir`.
fn small_dump(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("small.rdb");
    let out = snaplab(&["generate", "--output", path.to_str().unwrap(), "--keys", "300", "--value-size", "40"]);
    assert!(out.status.success(), "generate failed: {}", stderr(&out));
    path
}

/// `strategies` lists every registered strategy by its canonical name.
#[test]
fn strategies_lists_every_name() {
    let out = snaplab(&["strategies"]);
    assert!(out.status.success());
    for entry in snaplab::registry().entries() {
        assert!(
            stdout(&out).lines().any(|l| l.starts_with(entry.name)),
            "{} missing from:\n{}",
            entry.name,
            stdout(&out)
        );
    }
}

/// `verify` accepts a good dump (exit 0, summary with the key count and checksum) and
/// refuses a corrupted one with exit 1 and the byte offset on stderr.
#[test]
fn verify_accepts_good_and_refuses_bad() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_dump(dir.path());
    let out = snaplab(&["verify", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (ks, _) = rdb::load_file(&good).unwrap();
    assert!(stdout(&out).contains(&format!("{} in all", ks.len())), "{}", stdout(&out));
    assert!(stdout(&out).contains("checksum:  ok"), "{}", stdout(&out));

    let mut bytes = std::fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    let bad = dir.path().join("bad.rdb");
    std::fs::write(&bad, &bytes).unwrap();
    let out = snaplab(&["verify", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("at byte"), "no offset in: {}", stderr(&out));

    let out = snaplab(&["verify", dir.path().join("missing.rdb").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot open"), "{}", stderr(&out));
}

/// `inspect --json` prints one JSON object per key with the full value; the key count and
/// one value match what the reader decodes.
#[test]
fn inspect_json_has_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let dump = small_dump(dir.path());
    let (ks, _) = rdb::load_file(&dump).unwrap();
    let out = snaplab(&["inspect", "--json", dump.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), ks.len());
    let line = lines.iter().find(|l| l["key"] == "key:0000007").expect("key:0000007 is listed");
    let snaplab_core::Value::String(v) = &ks.get(0, b"key:0000007").unwrap().value else { panic!("a string") };
    assert_eq!(line["value"], serde_json::Value::String(String::from_utf8(v.clone()).unwrap()));
    assert_eq!(line["type"], "string");
    assert_eq!(line["db"], 0);
    // The binary keys in db 3 are not UTF-8, so they come out as base64 objects.
    assert!(lines.iter().any(|l| l["key"].get("base64").is_some()));

    let text = snaplab(&["inspect", dump.to_str().unwrap()]);
    assert!(text.status.success());
    assert_eq!(stdout(&text).lines().count(), ks.len());
}

/// `save --canonical` writes byte-identical files from every strategy, and the file loads
/// back to the input's keyspace.
#[test]
fn canonical_save_is_identical_across_strategies() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_dump(dir.path());
    let (want, _) = rdb::load_file(&input).unwrap();
    let mut outputs = Vec::new();
    for entry in snaplab::registry().entries() {
        let output = dir.path().join(format!("{}.rdb", entry.name));
        let out = snaplab(&[
            "save",
            "--strategy",
            entry.name,
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--canonical",
        ]);
        assert!(out.status.success(), "{}: {}", entry.name, stderr(&out));
        assert_eq!(rdb::load_file(&output).unwrap().0, want, "{} changed the data", entry.name);
        outputs.push((entry.name, std::fs::read(&output).unwrap()));
    }
    for pair in outputs.windows(2) {
        assert!(pair[0].1 == pair[1].1, "{} and {} wrote different bytes", pair[0].0, pair[1].0);
    }
}

/// A refused input: an unknown strategy and an unreadable dump exit 1 with the reason.
#[test]
fn save_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_dump(dir.path());
    let out_path = dir.path().join("out.rdb");
    let out = snaplab(&[
        "save",
        "--strategy",
        "nope",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown strategy 'nope'"), "{}", stderr(&out));

    let junk = dir.path().join("junk.rdb");
    std::fs::write(&junk, b"REDIS0010\xfe").unwrap();
    let out = snaplab(&[
        "save",
        "--strategy",
        "blocking",
        "--input",
        junk.to_str().unwrap(),
        "--output",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unexpected end of file at byte 10"), "{}", stderr(&out));
    assert!(!out_path.exists(), "a refused input must not create the output");
}

/// `compare` on a small built-in dataset, with every kind of write and Zipf-distributed
/// keys, prints a row per strategy (and the Redis row when `redis-server` is on PATH),
/// every dump verified, writes the JSON rows with the documented field names, and the plots.
#[test]
fn compare_small_dataset_verifies_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rows.json");
    let plots = dir.path().join("plots");
    let out = snaplab(&[
        "compare",
        "--keys",
        "2000",
        "--value-size",
        "32",
        "--writers",
        "2",
        "--rate",
        "4000",
        "--baseline-ms",
        "200",
        "--keys-dist",
        "zipf",
        "--mix",
        "overwrite=40,insert=20,delete=20,collection=20",
        "-q",
        "--json",
        json.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let mut names: Vec<String> = snaplab::registry().entries().iter().map(|e| e.name.to_string()).collect();
    if snaplab::harness::redis_server::RedisServer::find().is_some() {
        // Labelled by the server's major version: `redis-7 (fork)` for Redis 7.x.
        let label = rows[0]["strategy"].as_str().unwrap().to_string();
        assert!(label.starts_with("redis-") && label.ends_with(" (fork)"), "{label}");
        names.insert(0, label);
    }
    assert_eq!(rows.len(), names.len());
    for (row, name) in rows.iter().zip(&names) {
        assert_eq!(row["strategy"], *name);
        assert_eq!(row["verified"], true, "{row}");
        for field in [
            "time_to_cut_ms",
            "save_ms",
            "max_stall_ms",
            "writes_during_save",
            "file_bytes",
            "load_ms",
            "latency_p50_us",
            "latency_p99_us",
            "latency_p999_us",
            "latency_max_us",
            "baseline_p99_us",
            "throughput_ratio",
            "cpu_saver_s",
            "cpu_writers_s",
            "writers_held_ms",
            "achieved_rate_per_s",
        ] {
            assert!(row[field].is_number(), "{field} missing in {row}");
        }
        assert!(row["overloaded"].is_boolean(), "{row}");
        for field in ["peak_extra_memory_bytes", "dataset_bytes"] {
            assert!(row.get(field).is_some(), "{field} absent (null is allowed, absence is not) in {row}");
        }
        assert!(row["file_bytes"].as_u64().unwrap() > 2000 * 32);
        // No write completes during a save that is too short to see one, or one that holds
        // the writers throughout (blocking: through a socket, every write waits for the save).
        let (save_ms, held_ms) = (row["save_ms"].as_f64().unwrap(), row["writers_held_ms"].as_f64().unwrap());
        assert!(row["writes_during_save"].as_u64().unwrap() > 0 || save_ms < 5.0 || held_ms + 1.0 >= save_ms, "{row}");
    }
    let table = stdout(&out);
    assert!(
        names.iter().all(|n| table.lines().any(|l| l.starts_with(n.as_str()) && l.trim_end().ends_with("yes"))),
        "{table}"
    );
    for file in ["latency.svg", "memory.svg", "summary.svg"] {
        let svg = std::fs::read_to_string(plots.join(file)).unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{file}");
        assert!(names.iter().all(|n| svg.contains(n.as_str())), "{file} names every row");
    }
    let traces: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(plots.join("traces.json")).unwrap()).unwrap();
    assert_eq!(traces.len(), names.len());
    assert!(traces.iter().all(|t| !t["latency_max_us"].as_array().unwrap().is_empty()));
}

/// The load's options are checked before anything runs, with a message naming the choices.
#[test]
fn compare_refuses_a_bad_mix_or_distribution() {
    let out = snaplab(&["compare", "--keys", "10", "--mix", "overwrite=1,update=2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected overwrite, insert, delete or collection"), "{}", stderr(&out));
    let out = snaplab(&["compare", "--keys", "10", "--keys-dist", "normal"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected uniform, zipf or zipf:EXPONENT"), "{}", stderr(&out));
}

/// `--writers` past what the machine can drive on schedule (8 per core) is refused before
/// anything starts, with the limit and why; it used to panic spawning threads and leave a
/// redis-server and two temporary directories behind.
#[test]
fn compare_refuses_more_writers_than_the_machine_drives() {
    let tmp = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for writers in ["1000000", &(8 * cores + 1).to_string()] {
        let out = Command::new(env!("CARGO_BIN_EXE_snaplab"))
            .args(["compare", "--keys", "10", "--writers", writers])
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("at most {}", 8 * cores)) && err.contains("per core"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "nothing was started");
    // The limit itself is accepted (parsing only: --writers 0 of the same count is not run).
    let out = snaplab(&["compare", "--keys", "10", "--writers", &(8 * cores).to_string(), "--rate", "0"]);
    assert!(!stderr(&out).contains("writer threads is more"), "{}", stderr(&out));
}

/// `--rate 0`, a negative rate and a word are refused with a sentence saying what a rate
/// is (0 used to run and print throughput ratios of 221; -5 was "unexpected argument").
#[test]
fn compare_refuses_a_rate_that_is_not_a_rate() {
    for rate in ["0", "-5", "-0.5", "fast", "inf", "NaN"] {
        let out = snaplab(&["compare", "--keys", "10", "--rate", rate]);
        assert_eq!(out.status.code(), Some(2), "--rate {rate}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("a rate is the number of writes per second"), "--rate {rate}: {err}");
        assert!(!err.contains("unexpected argument"), "--rate {rate}: {err}");
    }
}

/// Every JSON row carries the run's settings and where it ran, so a row read alone says
/// what produced it; the file is still an array of rows.
#[test]
fn compare_json_rows_carry_the_run_settings() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let input = small_dump(dir.path());
    let json = dir.path().join("rows.json");
    let out = snaplab(&[
        "compare",
        "--input",
        input.to_str().unwrap(),
        "--strategies",
        "blocking,clone",
        "--no-redis",
        "--writers",
        "1",
        "--rate",
        "2000",
        "--baseline-ms",
        "100",
        "--keys-dist",
        "zipf",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = rows.as_array().expect("the file is an array of rows");
    assert_eq!(rows.len(), 2);
    let sha: String = Sha256::digest(std::fs::read(&input).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    for row in rows {
        assert!(row["strategy"].is_string(), "{row}");
        let run = &row["run"];
        assert_eq!(run["input"], input.to_str().unwrap(), "{run}");
        assert_eq!(run["input_sha256"], sha.as_str(), "{run}");
        assert_eq!(run["rate_per_s"], 2000.0, "{run}");
        assert_eq!(run["writers"], 1, "{run}");
        assert_eq!(run["keys_dist"], "zipf:0.99", "{run}");
        assert_eq!(run["mix"], "overwrite=85,insert=5,delete=5,collection=5", "{run}");
        assert!(run["value_sizes"].as_str().is_some_and(|s| !s.is_empty()), "{run}");
        assert_eq!(run["baseline_ms"], 100, "{run}");
        let commit = run["snaplab_commit"].as_str().unwrap();
        assert!(commit == "unknown" || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{run}");
        assert!(run["cores"].as_u64().unwrap() >= 1, "{run}");
        for field in ["cpu", "kernel"] {
            assert!(run[field].as_str().is_some_and(|s| !s.is_empty()), "{field}: {run}");
        }
        assert_eq!(run, &rows[0]["run"], "one run, one description");
    }
}

/// `--large-hashes` puts large hashes where the collection writes go: every row still
/// verifies (overwrites, which pick one of the ~400 keys, never turn one of the 8 into a
/// string for the next HSET to fail on), the run's description names the
/// knob, and a count or size it cannot honour is refused before anything runs.
#[test]
fn compare_with_large_hashes_verifies_and_names_the_knob() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rows.json");
    let out = snaplab(&[
        "compare",
        "--keys",
        "100",
        "--large-hashes",
        "8:64KiB",
        "--mix",
        "overwrite=50,delete=10,collection=40",
        "--strategies",
        "perkey,overlay,sharded",
        "--no-redis",
        "--rate",
        "5000",
        "--baseline-ms",
        "300",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row["verified"], true, "{row}");
        assert!(row["run"]["input"].as_str().unwrap().contains("8 hashes snaplab:hash:* of 65536 bytes"), "{row}");
    }
    for bad in ["0:1MiB", "2000:1KiB", "8:1MB", "8"] {
        let out = snaplab(&["compare", "--keys", "10", "--large-hashes", bad]);
        assert_eq!(out.status.code(), Some(2), "--large-hashes {bad}: {}", stderr(&out));
    }
}

/// `--repeat 2`: one JSON row per strategy with the single-run keys holding the medians,
/// every run kept under `runs`, and `spread` giving each figure's median, min and max; the
/// table prints the range beside the median. (Shape only: no figure is asserted.)
#[test]
fn compare_repeat_keeps_every_run_and_reports_the_spread() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_dump(dir.path());
    let json = dir.path().join("rows.json");
    let out = snaplab(&[
        "compare",
        "--input",
        input.to_str().unwrap(),
        "--strategies",
        "blocking,clone",
        "--no-redis",
        "--rate",
        "2000",
        "--baseline-ms",
        "100",
        "--repeat",
        "2",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(rows.len(), 2, "one row per strategy, not per run");
    for (row, name) in rows.iter().zip(["blocking", "clone"]) {
        assert_eq!(row["strategy"], name);
        assert_eq!(row["verified"], true, "{row}");
        assert_eq!(row["run"]["repeat"], 2, "{row}");
        let runs = row["runs"].as_array().expect("runs is an array");
        assert_eq!(runs.len(), 2);
        for run in runs {
            assert_eq!(run["strategy"], name);
            assert!(run["save_ms"].is_number() && run.get("runs").is_none(), "{run}");
        }
        for field in ["save_ms", "load_ms", "time_to_cut_ms", "file_bytes", "latency_p99_us", "writes_during_save"] {
            assert!(row[field].is_number(), "{field} in {row}");
            let s = &row["spread"][field];
            let (median, min, max) =
                (s["median"].as_f64().unwrap(), s["min"].as_f64().unwrap(), s["max"].as_f64().unwrap());
            assert_eq!(s["runs"], 2, "{field}: {s}");
            let each: Vec<f64> = runs.iter().map(|r| r[field].as_f64().unwrap()).collect();
            assert_eq!(min, each.iter().copied().fold(f64::INFINITY, f64::min), "{field}: {s}");
            assert_eq!(max, each.iter().copied().fold(f64::NEG_INFINITY, f64::max), "{field}: {s}");
            assert!((median - (each[0] + each[1]) / 2.0).abs() < 1e-9, "{field}: {s}");
            // The row's own key holds the median (counts and bytes rounded to an integer).
            assert!((row[field].as_f64().unwrap() - median).abs() <= 0.5, "{field}: {row}");
        }
    }
    let table = stdout(&out);
    assert!(table.contains("every row run 2 times"), "{table}");
    let line = table.lines().find(|l| l.starts_with("blocking ")).unwrap();
    assert!(line.contains(" (") && line.contains(")"), "the range is beside the median: {table}");
}

/// `noise-probe` prints one line of overshoots and writes them as JSON with the documented
/// keys; a duration that is not one is refused. (No figure is asserted: the machine decides.)
#[test]
fn noise_probe_prints_and_writes_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("noise.json");
    let out = snaplab(&["noise-probe", "--seconds", "0.2", "--json", json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("noise probe: 100 us sleeps for"), "{}", stdout(&out));
    let probe: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for field in ["sleep_us", "seconds", "sleeps", "overshoot_p50_us", "overshoot_p99_us", "overshoot_max_us"] {
        assert!(probe[field].is_number(), "{field} in {probe}");
    }
    assert_eq!(probe["sleep_us"], 100.0);
    for bad in ["0", "-1", "soon"] {
        let out = snaplab(&["noise-probe", "--seconds", bad]);
        assert_eq!(out.status.code(), Some(2), "--seconds {bad}: {}", stderr(&out));
    }
}

/// Processes whose command line mentions `needle` (a test's own temporary directory).
fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != std::process::id() as i32)
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmd.contains(needle).then_some((pid, cmd))
        })
        .collect()
}

/// Start `compare` with its temporary files under `tmp`, wait until `ready()` says the
/// moment has come (bounded: 300 s), send SIGINT to it alone (its servers and workers must
/// be stopped by it, not by the terminal), and return what it printed and its exit code.
fn interrupt_compare(tmp: &Path, args: &[&str], ready: impl Fn() -> bool) -> (Option<i32>, String, String) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let child = Command::new(env!("CARGO_BIN_EXE_snaplab"))
        .arg("compare")
        .args(args)
        .env("TMPDIR", tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "the moment to interrupt never came");
        // Polling other processes: they announce nothing.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stdout(&out), stderr(&out))
}

/// Nothing of the run is left: no file or directory under its temporary directory, no
/// process (redis-server, a worker, a BGSAVE child) naming it.
fn assert_nothing_left(tmp: &Path) {
    let left: Vec<_> = std::fs::read_dir(tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let procs = processes_mentioning(tmp.to_str().unwrap());
    assert!(procs.is_empty(), "processes left running: {procs:?}");
}

/// Ctrl-C while a strategy's worker runs (the second of two rows): the worker is stopped,
/// the temporary directory removed, the finished row printed (and written to --json), and
/// the exit status is 130, as for a shell command ended by SIGINT.
#[test]
fn compare_interrupted_during_a_row_prints_the_rows_finished_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let json = dir.path().join("rows.json");
    let needle = tmp.to_str().unwrap().to_string();
    let (code, out, err) = interrupt_compare(
        &tmp,
        &[
            "--keys",
            "20000",
            "--writers",
            "1",
            "--rate",
            "1000",
            "--baseline-ms",
            "3000",
            "--strategies",
            "blocking,clone",
            "--no-redis",
            "-q",
            "--json",
            json.to_str().unwrap(),
        ],
        || {
            processes_mentioning(&needle)
                .iter()
                .any(|(_, cmd)| cmd.contains("compare-worker") && cmd.contains("--strategy clone"))
        },
    );
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(out.lines().any(|l| l.starts_with("blocking ")), "the finished row is printed: {out}");
    assert!(!out.lines().any(|l| l.starts_with("clone ")), "{out}");
    assert!(err.contains("interrupted: 1 of 2 rows finished"), "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_nothing_left(&tmp);
}

/// Ctrl-C while the Redis row runs: the redis-server (and any BGSAVE child) is stopped and
/// its directory, with its copy of the dump, removed, as is compare's own.
#[test]
fn compare_interrupted_during_the_redis_row_leaves_no_server() {
    if snaplab::harness::redis_server::RedisServer::find().is_none() {
        snaplab::harness::skips::skipped(
            "compare_interrupted_during_the_redis_row_leaves_no_server",
            "no redis-server on PATH",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // The moment: the server loaded from the dataset (its directory holds the dump and the
    // socket it answers on).
    let server_up = || {
        std::fs::read_dir(&tmp).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("snaplab-redis-")
                && e.path().join("dump.rdb").exists()
                && e.path().join("redis.sock").exists()
        })
    };
    let args = [
        "--keys",
        "20000",
        "--writers",
        "1",
        "--rate",
        "1000",
        "--baseline-ms",
        "3000",
        "--strategies",
        "blocking",
        "--with-redis",
        "-q",
    ];
    let (code, out, err) = interrupt_compare(&tmp, &args, server_up);
    assert_eq!(code, Some(130), "{out}\n{err}");
    assert!(err.contains("interrupted: 0 of 2 rows finished"), "{err}");
    assert_nothing_left(&tmp);
}

/// The Redis row driven past its capacity (2,000,000 writes/s through one connection, a
/// round trip each: no machine serves that) is flagged: `overloaded: true` with the rate
/// it achieved in the JSON, `OVERLOADED` on its line, and no `x redis` ratio against it.
#[test]
fn compare_flags_a_redis_row_driven_past_its_capacity() {
    if snaplab::harness::redis_server::RedisServer::find().is_none() {
        snaplab::harness::skips::skipped(
            "compare_flags_a_redis_row_driven_past_its_capacity",
            "no redis-server on PATH",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rows.json");
    let out = snaplab(&[
        "compare",
        "--keys",
        "2000",
        "--value-size",
        "16",
        "--writers",
        "1",
        "--rate",
        "2000000",
        "--baseline-ms",
        "200",
        "--strategies",
        "blocking",
        "--with-redis",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let redis = &rows[0];
    assert!(redis["strategy"].as_str().unwrap().starts_with("redis-"), "{redis}");
    assert_eq!(redis["overloaded"], true, "{redis}");
    let achieved = redis["achieved_rate_per_s"].as_f64().unwrap();
    assert!(achieved > 0.0 && achieved < 1_900_000.0, "{achieved}");
    let table = stdout(&out);
    let line = table.lines().filter(|l| l.starts_with("redis-")).nth(1).unwrap();
    assert!(line.ends_with("OVERLOADED"), "{table}");
    let blocking_writes = table.lines().filter(|l| l.starts_with("blocking")).nth(1).unwrap();
    assert_eq!(blocking_writes.split_whitespace().nth(7), Some("-"), "no x redis ratio: {table}");
    assert!(table.contains("no x redis ratio is computed against it"), "{table}");
}

/// A missing `--input` is said once, plainly, as `verify` says it: `cannot open <path>:
/// No such file or directory`, not an I/O error at byte 0 repeated twice.
#[test]
fn compare_says_a_missing_input_cannot_be_opened() {
    let out = snaplab(&["compare", "--input", "nosuch.rdb", "--no-redis", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot open nosuch.rdb: No such file or directory"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(!err.contains("byte 0"), "{err}");
}

/// With `--out-dir`, every row's dump stays there for inspection (Redis's as
/// `compare-redis.rdb`), each a valid dump; the run says how much disk it needs first.
#[test]
fn compare_out_dir_keeps_every_rows_dump() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("dumps");
    let redis = snaplab::harness::redis_server::RedisServer::find().is_some();
    let out = snaplab(&[
        "compare",
        "--keys",
        "500",
        "--writers",
        "1",
        "--rate",
        "1000",
        "--baseline-ms",
        "100",
        "--strategies",
        "blocking,clone",
        "-q",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("disk: needs about"), "{}", stderr(&out));
    let mut want = vec!["compare-blocking.rdb", "compare-clone.rdb", "dataset.rdb"];
    if redis {
        want.insert(2, "compare-redis.rdb");
    }
    let mut found: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    found.sort();
    assert_eq!(found, want);
    for f in want {
        let v = snaplab(&["verify", out_dir.join(f).to_str().unwrap()]);
        assert!(v.status.success(), "{f}: {}", stderr(&v));
    }
}

/// With --input and no --value-size, writers' values are sized like the dump's own
/// strings (sampled from their sizes) and the table's header and the JSON say so; with
/// --value-size they are that size, said likewise.
#[test]
fn compare_on_a_dump_writes_values_sized_like_its_strings() {
    let dir = tempfile::tempdir().unwrap();
    let input = small_dump(dir.path()); // strings of 40 bytes
    let json = dir.path().join("rows.json");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "compare",
            "--input",
            input.to_str().unwrap(),
            "--strategies",
            "blocking",
            "--no-redis",
            "--rate",
            "1000",
            "--baseline-ms",
            "100",
            "-q",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = snaplab(&args);
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (stdout(&out), rows[0]["run"].clone())
    };
    let (table, info) = run(&[]);
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("LOAD:") && header.contains("sized like the dump's strings"), "{table}");
    assert!(header.contains("median 40 B"), "{header}");
    assert_eq!(info["value_size_bytes"], serde_json::Value::Null, "{info}");
    let (table, info) = run(&["--value-size", "64"]);
    assert!(table.lines().next().unwrap().contains("values 64 bytes each (--value-size)"), "{table}");
    assert_eq!(info["value_size_bytes"], 64, "{info}");
}

/// `inspect` prints expiries as UTC dates with milliseconds (the raw unix ms stays in
/// --json), and its columns stay aligned whatever the length of a key: every field but
/// the key starts at the same column on every line.
#[test]
fn inspect_prints_utc_expiries_in_aligned_columns() {
    use snaplab_core::{Entry, Keyspace, SaveOptions, Value};
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("ttl.rdb");
    let mut ks = Keyspace::new();
    let at = 1_800_000_000_123i64; // 2027-01-15T08:00:00.123Z
    ks.insert(0, b"a".to_vec(), Entry { value: Value::String(b"1".to_vec()), expire_at_ms: Some(at) });
    ks.insert(0, vec![b'k'; 100], Entry { value: Value::String(b"22".to_vec()), expire_at_ms: Some(at) });
    ks.insert(0, b"plain".to_vec(), Entry::new(Value::String(b"333".to_vec())));
    snaplab_core::write_snapshot(&ks, &dump, &SaveOptions::default(), "test").unwrap();

    let out = snaplab(&["inspect", dump.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in lines.iter().filter(|l| !l.ends_with("plain")) {
        assert!(l.contains("2027-01-15T08:00:00.123Z"), "{l}");
    }
    // Each value's preview ("1", "22", "333") starts at the same column.
    let col = |l: &str| l.find('"').unwrap();
    assert!(lines.iter().all(|l| col(l) == col(lines[0])), "{text}");

    let json = snaplab(&["inspect", "--json", dump.to_str().unwrap()]);
    let rows: Vec<serde_json::Value> = stdout(&json).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(rows.iter().any(|r| r["expire_at_ms"] == at), "{rows:?}");
}

/// An RDB-preamble AOF (a dump, then RESP commands) is read whole: `verify` and `inspect`
/// report its tail, `convert` writes the state after the tail, and a tail cut inside a
/// command or holding an unknown command is refused with its byte offset, not a panic.
#[test]
fn an_rdb_preamble_aof_is_read_with_its_tail() {
    use snaplab_core::{Command as Cmd, aof};
    let dir = tempfile::tempdir().unwrap();
    let rdb_file = small_dump(dir.path());
    let rdb_bytes = std::fs::read(&rdb_file).unwrap();
    let mut tail = Vec::new();
    aof::put_select(&mut tail, 3);
    let push = Cmd::RPush { db: 3, key: b"from-the-tail".to_vec(), elements: vec![b"x".to_vec()] };
    aof::encode_command(&mut tail, &push);
    let file = dir.path().join("appendonly.aof");
    std::fs::write(&file, [rdb_bytes.as_slice(), tail.as_slice()].concat()).unwrap();

    let out = snaplab(&["verify", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("AOF tail:  2 commands"), "{}", stdout(&out));
    let out = snaplab(&["inspect", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("AOF tail: 2 commands"), "{}", stdout(&out));

    let converted = dir.path().join("converted.rdb");
    let out = snaplab(&["convert", "--to", "rdb", file.to_str().unwrap(), converted.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (mut want, _) = rdb::load_file(&rdb_file).unwrap();
    want.apply(&push, 0).unwrap();
    let (got, _) = aof::load_file(&converted).unwrap();
    assert_eq!(got, want, "the converted dump is the RDB with the tail applied");

    let truncated = dir.path().join("truncated.aof");
    std::fs::write(&truncated, [rdb_bytes.as_slice(), &tail[..tail.len() - 3]].concat()).unwrap();
    let out = snaplab(&["verify", truncated.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ends inside a command"), "{}", stderr(&out));

    let unknown = dir.path().join("unknown.aof");
    let mut bad = Vec::new();
    aof::put_multibulk(&mut bad, &[b"INCR", b"k"]);
    std::fs::write(&unknown, [rdb_bytes.as_slice(), bad.as_slice()].concat()).unwrap();
    let out = snaplab(&["verify", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("unknown command 'INCR' at byte {}", rdb_bytes.len())), "{}", stderr(&out));
}
