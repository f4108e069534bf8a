//! The `snaplab` command-line tool; see `snaplab --help`.

fn main() -> std::process::ExitCode {
    snaplab_harness::cli::main(snaplab::registry())
}
