#![doc = include_str!("../README.md")]

pub mod aof;
pub mod atomic;
pub mod command;
pub mod error;
pub mod keyspace;
pub mod locked;
pub mod memory;
pub mod rdb;
pub mod rules;
pub mod strategy;

pub use atomic::{AUTOSYNC_BYTES, AtomicFile, IoFile, RealIo, SaveIo, remove_stale_temp_files};
pub use command::{Command, CommandError, Reply, SlotChange, apply_to_slot, escape};
pub use keyspace::{Bytes, DB_COUNT, Db, Entry, EntryRef, Keyspace, KeyspaceView, Opaque, Value, ValueRef};
pub use locked::{Counted, LockedKeyspace};
pub use rdb::{RdbError, StoreBuilder};
pub use strategy::{
    Applied, BgSave, Cut, EXTRA_MEMORY_ELSEWHERE, Guarantee, LogClose, SaveError, SaveOptions, SaveReport, SaveState,
    SaveStatus, SaveTicket, SnapshotStrategy, WriteStamp, load_built, unix_ms_now, write_snapshot, write_snapshot_to,
};
