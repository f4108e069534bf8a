//! The first-BGSAVE choice, measured: build the saver's image when the store is built
//! (`at-start`, what `PingPong::from_keyspace` does) or copy the live state at the first
//! cut (`at-first-cut`). Prints, for the mode given, the time to build the store, the
//! resident memory it added, and the time to cut of the first and second BGSAVE.
//!
//! Run one mode per process, so each starts from a clean heap:
//!
//! ```sh
//! cargo run --release -p snaplab-pingpong --example first_image -- at-start 1000000
//! cargo run --release -p snaplab-pingpong --example first_image -- at-first-cut 1000000
//! ```

use std::time::Instant;

use snaplab_core::memory::resident_bytes;
use snaplab_core::{Entry, Keyspace, SaveOptions, SnapshotStrategy, Value};
use snaplab_pingpong::{FirstImage, PingPong};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.get(1).map(String::as_str) {
        Some("at-start") | None => FirstImage::AtStart,
        Some("at-first-cut") => FirstImage::AtFirstCut,
        Some(other) => panic!("unknown mode {other:?}: at-start or at-first-cut"),
    };
    let keys: usize = args.get(2).map_or(1_000_000, |n| n.parse().expect("a number of keys"));

    // The comparison's dataset shape: `key:NNNNNNN` -> 100 bytes.
    let mut ks = Keyspace::new();
    ks.db_mut(0).reserve(keys);
    for i in 0..keys {
        ks.insert(0, format!("key:{i:07}").into_bytes(), Entry::new(Value::String(vec![b'x'; 100])));
    }
    let dataset_mib = ks.heap_bytes() as f64 / (1 << 20) as f64;
    let rss0 = resident_bytes(None).unwrap_or(0);
    let t = Instant::now();
    let store = PingPong::with_first_image(ks, mode);
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let added_mib = resident_bytes(None).unwrap_or(0).saturating_sub(rss0) as f64 / (1 << 20) as f64;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut cuts = Vec::new();
    for n in 0..2 {
        let bg = store.bgsave(&dir.path().join(format!("dump{n}.rdb")), &SaveOptions::default()).expect("bgsave");
        cuts.push(bg.time_to_cut().as_secs_f64() * 1e6);
        bg.wait().expect("the save");
    }
    let after_mib = resident_bytes(None).unwrap_or(0).saturating_sub(rss0) as f64 / (1 << 20) as f64;
    println!(
        "{mode:?}: {keys} keys ({dataset_mib:.1} MiB of data): build {build_ms:.1} ms, +{added_mib:.1} MiB resident \
         after the build, +{after_mib:.1} MiB after two saves; first cut {:.1} us, second cut {:.1} us",
        cuts[0], cuts[1]
    );
}
