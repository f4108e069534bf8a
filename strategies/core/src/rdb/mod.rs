//! The Redis RDB format: a streaming reader for everything Redis 2.x to 8.6 and Valkey 7.2
//! to 9.0 write, and a writer of what Redis 7.0 writes.
//!
//! Sources for every rule: Redis src/rdb.h (opcodes, types) and src/rdb.c (`rdbSaveRio`,
//! `rdbLoadRioWithLoadingCtx`, `rdbLoadObject`), plus src/ziplist.c, src/listpack.c,
//! src/intset.c and src/zipmap.c for the packed blobs.

pub mod consts;
pub mod crc;
pub mod decode;
pub mod encode;
pub mod lzf;
pub mod pack;
pub mod packed;

pub use consts::{Dialect, type_name, type_name_in};
pub use decode::{
    BATCH_KEYS, BATCHES_IN_FLIGHT, CheckError, CheckEvent, Checksum, Element, Item, KeyInfo, KeyRecord, LoadSummary,
    MEMBER_CHECK_LIMIT, RdbError, RdbReader, StoreBuilder, StringEncoding, check, check_each, load, load_cost,
    load_file, load_file_with_progress, load_into, load_with_progress, scan,
};
pub use encode::{EncodeOptions, EncodeStats, RdbWriter, write_view};
