//! The coursework machinery behind `cargo xtask`: the exercise manifest, the holes punched
//! in the reference code, grading, hints, the student's export, and the check that every
//! exercise is real. `cargo xtask --help` describes the commands.

pub mod check;
pub mod export;
pub mod grade;
pub mod manifest;
pub mod regions;
pub mod run;
pub mod state;
pub mod tree;
