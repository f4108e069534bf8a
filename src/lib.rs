//! # snaplab
//!
//! The facade of the snaplab workspace: it re-exports every crate and lists the
//! strategies by name. `cargo run -- <args>` starts the `snaplab` command-line tool.
//!
//! | crate | what it holds |
//! |---|---|
//! | [`core`] | the keyspace model, the [`SnapshotStrategy`](core::SnapshotStrategy) trait, the RDB codec, the atomic file writer |
//! | [`blocking`] | SAVE: writers wait for the whole serialization |
//! | [`clone`] | lock, deep-clone, unlock, serialize the clone in the background |
//! | [`cow`] | persistent map: O(1) snapshot, path copying on write |
//! | [`fork`] | fork: the child serializes what copy-on-write pages keep frozen |
//! | [`sharded`] | Dragonfly-style: versioned buckets, serialize-before-mutate, parallel serializers |
//! | [`formats`] | the same snapshot in JSON lines, bincode's wire format and a length-delimited stream, beside RDB |
//! | [`harness`] | writers during a save, verification, measurements, the CLI |

pub use snaplab_blocking as blocking;
pub use snaplab_clone as clone;
pub use snaplab_core as core;
pub use snaplab_cow as cow;
pub use snaplab_fork as fork;
pub use snaplab_formats as formats;
pub use snaplab_harness as harness;
pub use snaplab_sharded as sharded;

use snaplab_harness::registry::{Registry, entry};

/// Every strategy, by its canonical name. A new strategy is one line here.
pub fn registry() -> Registry {
    Registry::new(vec![
        entry::<blocking::BlockingSave>("SAVE: writers wait while the whole keyspace is serialized"),
        entry::<clone::CloneThenSerialize>("lock, deep-clone the keyspace, unlock, serialize the clone on a thread"),
        entry::<cow::CowMap>("persistent map: O(1) snapshot of the root, writers copy the paths they touch"),
        entry::<fork::ForkSave>("Redis BGSAVE: fork, the child serializes the memory image copy-on-write keeps frozen"),
        entry::<sharded::ShardedStore>(
            "Dragonfly-style: shards with versioned buckets, serialize-before-mutate, one sink",
        ),
    ])
}
