//! Encode and decode throughput of the RDB codec (placeholder until the bench lands).

fn main() {}
