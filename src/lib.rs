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
//! | [`perkey`] | Valkey's forkless save: an epoch per key, a writer copies a key's pre-cut value before changing it |
//! | [`overlay`] | KeyDB-style: a frozen base for the save, writes in an overlay with tombstones, merged back after |
//! | [`pingpong`] | live state plus ping/pong deltas and the saver's image: an O(1) cut, writers never wait |
//! | [`relaxed`] | no cut: a fuzzy traversal plus a log of writes to visited keys, an RDB-preamble AOF (the state at the log's close) |
//! | [`formats`] | the same snapshot in JSON lines, bincode's wire format and a length-delimited stream, beside RDB |
//! | [`harness`] | writers during a save, verification, measurements, the CLI |

pub use snaplab_blocking as blocking;
pub use snaplab_clone as clone;
pub use snaplab_core as core;
pub use snaplab_cow as cow;
pub use snaplab_fork as fork;
pub use snaplab_formats as formats;
pub use snaplab_harness as harness;
pub use snaplab_overlay as overlay;
pub use snaplab_perkey as perkey;
pub use snaplab_pingpong as pingpong;
pub use snaplab_relaxed as relaxed;
pub use snaplab_sharded as sharded;

use snaplab_harness::registry::Registry;

/// The strategies, one line each: `module_name: path::to::Type => "what it does"`. This is
/// the one place a strategy is registered: it hands the list to the macro `$then`, and
/// everything that lists strategies is built from it: [`registry`] (the `snaplab` CLI,
/// `compare`, the benches, and the interop, kill and round-trip tests that loop over the
/// registry) and the conformance suite in `tests/conformance.rs`.
///
/// A new strategy is a crate under `strategies/`, one dependency line in this package's
/// `Cargo.toml`, and one line here.
// ANCHOR: strategy_list
#[macro_export]
macro_rules! with_strategies {
    ($then:ident) => {
        $then! {
            blocking: $crate::blocking::BlockingSave => "SAVE: writers wait while the whole keyspace is serialized",
            clone: $crate::clone::CloneThenSerialize => "lock, deep-clone the keyspace, unlock, serialize the clone on a thread",
            cow: $crate::cow::CowMap => "persistent map: O(1) snapshot of the root, writers copy the paths they touch",
            fork: $crate::fork::ForkSave => "Redis BGSAVE: fork, the child serializes the memory image copy-on-write keeps frozen",
            sharded: $crate::sharded::ShardedStore => "Dragonfly-style: shards with versioned buckets, serialize-before-mutate, one sink",
            perkey: $crate::perkey::PerKeyCopy => "Valkey's forkless save: an epoch per key, writers copy a key's pre-cut value before changing it",
            overlay: $crate::overlay::OverlayStore => "KeyDB-style: BGSAVE freezes the map as a base, writes go to an overlay merged back after",
            pingpong: $crate::pingpong::PingPong => "wait-free ping-pong: writes go to the live state and a delta; BGSAVE flips deltas, the saver folds one into its image",
            relaxed: $crate::relaxed::Relaxed => "no cut: a fuzzy traversal, writes to visited keys logged; an RDB-preamble AOF of the state at the log's close",
        }
    };
}
// ANCHOR_END: strategy_list

/// Build a [`Registry`] from the [`with_strategies!`] list.
#[doc(hidden)]
#[macro_export]
macro_rules! registry_of {
    ($($name:ident: $ty:ty => $summary:literal,)*) => {
        $crate::harness::registry::Registry::new(vec![$($crate::harness::registry::entry::<$ty>($summary)),*])
    };
}

/// Every strategy, by its canonical name (from [`with_strategies!`]).
pub fn registry() -> Registry {
    with_strategies!(registry_of)
}

/// The book's chapters as doctests: `cargo test --doc` compiles (and runs) every Rust code
/// block in them that is not marked `ignore`, so a chapter's example cannot drift from the
/// API. Each chapter becomes the documentation of an empty struct that exists only when
/// rustdoc collects doctests; `cargo build` and `cargo doc` never see it. tests/book.rs
/// checks that every chapter under book/src is listed here (the generated results pages
/// hold no Rust and are left out) and states the rules for code blocks.
#[cfg(doctest)]
mod book {
    macro_rules! chapters {
        ($($file:literal => $name:ident,)*) => {$(
            #[doc = include_str!(concat!("../book/src/", $file))]
            pub struct $name;
        )*};
    }

    chapters! {
        "introduction.md" => Introduction,
        "point-in-time.md" => PointInTime,
        "atomic-file.md" => AtomicFile,
        "blocking.md" => Blocking,
        "verdict.md" => Verdict,
        "clone.md" => CloneThenSerialize,
        "cow.md" => Cow,
        "fork.md" => Fork,
        "linear-hashing.md" => LinearHashing,
        "sharded.md" => Sharded,
        "perkey.md" => PerKey,
        "overlay.md" => Overlay,
        "pingpong.md" => PingPong,
        "relaxed.md" => Relaxed,
        "measuring.md" => Measuring,
        "comparison.md" => Comparison,
        "checker.md" => Checker,
        "your-strategy.md" => YourStrategy,
        "formats.md" => Formats,
        "exercises.md" => Exercises,
    }
}
