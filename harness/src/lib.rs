#![doc = include_str!("../README.md")]

pub mod checker;
pub mod cli;
pub mod compare;
pub mod conformance;
pub mod counting_alloc;
pub mod dataset;
pub mod faults;
pub mod formats;
pub mod load;
pub mod model;
pub mod noise;
pub mod plots;
pub mod progress;
pub mod redis_server;
pub mod registry;
pub mod render;
pub mod serve;
pub mod skips;
pub mod stops;

/// The core crate, re-exported for the [`conformance_suite!`] macro.
pub use snaplab_core;
