//! Fuzz the RDB reader: any byte string must load as a keyspace or fail with a typed
//! error, never panic, hang, or allocate without bound. Run with (seeded from the corpus):
//!
//! ```text
//! cargo fuzz run rdb_load fuzz/corpus/rdb_load ../shared/rdb-corpus/*/ -- -max_total_time=600
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = snaplab_core::rdb::load(data) {
        // Every error points inside the input.
        assert!(e.offset() <= data.len() as u64, "offset {} past {} bytes: {e}", e.offset(), data.len());
    }
});
