//! The conformance suite for the verdict store, in the strategy's own crate: one line, and
//! `snaplab-harness` as a dev-dependency. `cargo xtask grade 04-fix-verdict` runs it.

snaplab_harness::conformance_suite!(verdict, snaplab_verdict::CopyByDatabase);
