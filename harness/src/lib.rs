#![doc = include_str!("../README.md")]

pub mod checker;
pub mod cli;
pub mod compare;
pub mod dataset;
pub mod progress;
pub mod redis_server;
pub mod registry;
pub mod render;
