//! The real-dump corpus as a specification of the RDB reader.
//!
//! `../shared/rdb-corpus` (or the directory named by `SNAPLAB_CORPUS`) holds 106 RDB files
//! written by Redis 2.x to 7.4, Valkey and Redis Enterprise: Redis's own test assets, the dumps of
//! redis-rdb-tools, HDT3213/rdb, rdb-rs and librdb, and reference dumps written by redis-server
//! 7.0.15. Its `MANIFEST.md` says, for each file, what an independent decoder found in it, what
//! Redis 7.0.15 did when loading it, and what the source repository's own tests assert. This file
//! turns that manifest into assertions:
//!
//! - every `.rdb` file in the corpus has exactly one row in [`SPEC`], so a new file without a row
//!   fails, naming the file;
//! - a row says the file either loads (with its RDB version, checksum status, writer, AUX field
//!   names, key count and contents) or is refused with a given typed [`RdbError`] variant, whose
//!   details (module name, version, byte, offset) are checked where the manifest gives them;
//! - expected contents are transcribed from `MANIFEST.md`, never from our decoder's output: files
//!   under `redis/` and `redis-7.0.15-generated/` are checked key by key (every key, its db, type,
//!   value, expiry and every encoding the manifest states); the other directories at least by key
//!   count, names, dbs and types, plus every value, expiry and LRU/LFU figure the manifest states;
//! - no file makes the reader panic: each file runs under `catch_unwind`, and one message lists
//!   every file that missed its row, with the reason.
//!
//! Every file also goes through consistency checks that need no manifest: the streaming reader
//! ([`RdbReader`]) and [`rdb::load_file`] agree key by key; the [`LoadSummary`] counts (keys and
//! expiries per db, opaque values, functions, empty keys skipped, bytes read) match what was
//! actually loaded; and checking without building values ([`rdb::check`], what `snaplab verify`
//! runs) reaches the same verdict: the same summary for a file that loads, the same error for a
//! file that is refused.
//!
//! The corpus lives outside the repository (a clone elsewhere has no `../shared`; from a git
//! worktree outside the main checkout, point `SNAPLAB_CORPUS` at it); when it is absent each test
//! says so on stderr and passes.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use snaplab_core::rdb::{self, Checksum, Item, KeyRecord, LoadSummary, RdbError, RdbReader, StringEncoding};
use snaplab_core::{Entry, Keyspace, Value};

// ---------------------------------------------------------------------------------------------
// The specification: one row per corpus file.
// ---------------------------------------------------------------------------------------------

/// AUX fields Redis 4.0 to 6.2 write.
const AUX_PREAMBLE: &[&str] = &["aof-preamble", "ctime", "redis-bits", "redis-ver", "used-mem"];
/// AUX fields Redis 3.2 writes (and the 2.9.999 development builds).
const AUX_3_2: &[&str] = &["ctime", "redis-bits", "redis-ver", "used-mem"];
/// AUX fields Redis 7.x writes.
const AUX_7: &[&str] = &["aof-base", "ctime", "redis-bits", "redis-ver", "used-mem"];
/// AUX fields Redis 7.x writes when it has replication information.
const AUX_7_REPL: &[&str] =
    &["aof-base", "ctime", "redis-bits", "redis-ver", "repl-id", "repl-offset", "repl-stream-db", "used-mem"];
/// The Redis version that Redis's test suite and librdb stamp on their hand-made dumps.
const DEV: &str = "255.255.255";

/// What a row expects of the CRC-64 trailer (the manifest's CRC column).
#[derive(Clone, Copy, Debug)]
enum Crc {
    /// `ok`: the trailer matches; the reader reports `Verified` with the trailer's value.
    Verified,
    /// `0`: eight zero bytes (`rdbchecksum no`); the reader reports `Disabled`.
    Zero,
    /// `n/a`: RDB versions before 5 have no trailer; the reader reports `Absent`.
    NoTrailer,
}

/// The manifest's writer line: the `redis-ver` (or, for Valkey 9, `valkey-ver`) AUX value and
/// the names of all AUX fields. A name written `*x*` matches any name containing `x` (the
/// manifest prints one name whose bytes are not UTF-8).
struct Writer {
    /// The AUX field naming the writer's version: `redis-ver`, or `valkey-ver` for Valkey 9.
    ver_field: &'static str,
    /// Its value.
    redis_ver: &'static str,
    /// Every AUX field name, as a multiset.
    aux: &'static [&'static str],
}

/// A file that loads: the facts from the manifest's "decoded" line plus a content check.
struct Loads {
    /// RDB version from the header.
    version: u32,
    /// Checksum status.
    crc: Crc,
    /// `None`: the file has no AUX fields at all.
    writer: Option<Writer>,
    /// Keys loaded over all databases (empty collections excluded, as Redis skips them).
    keys: usize,
    /// The per-file content check.
    check: fn(&mut Check<'_>),
}

/// How a refused file must be refused.
#[derive(Debug)]
enum Refusal {
    /// [`RdbError::UnsupportedVersion`] with this version.
    UnsupportedVersion { version: u32 },
    /// [`RdbError::Checksum`] with these values, at the trailer (8 bytes before the end).
    Checksum { stored: u64, computed: u64 },
    /// [`RdbError::UnknownType`] with this byte at this offset.
    UnknownType { byte: u8, offset: u64 },
    /// [`RdbError::Corrupt`] whose `what` mentions every one of these words (case-insensitive),
    /// found no later than `at_most` when the manifest bounds it.
    Corrupt { what: &'static [&'static str], at_most: Option<u64> },
    /// [`RdbError::ModuleValue`] for this key and module.
    ModuleValue { key: &'static str, module: &'static str },
    /// [`RdbError::ModuleAux`] for this module.
    ModuleAux { module: &'static str },
}

/// What one file must do.
enum Expect {
    /// It loads and meets the row.
    Loads(Loads),
    /// It is refused with a typed error.
    Refused(Refusal),
}

/// A row for a file that loads.
const fn loads(version: u32, crc: Crc, writer: Option<Writer>, keys: usize, check: fn(&mut Check<'_>)) -> Expect {
    Expect::Loads(Loads { version, crc, writer, keys, check })
}

/// The writer of a file with AUX fields.
const fn by(redis_ver: &'static str, aux: &'static [&'static str]) -> Option<Writer> {
    Some(Writer { ver_field: "redis-ver", redis_ver, aux })
}

/// The writer of a Valkey 9 file, which names its version in `valkey-ver`.
const fn by_valkey(valkey_ver: &'static str, aux: &'static [&'static str]) -> Option<Writer> {
    Some(Writer { ver_field: "valkey-ver", redis_ver: valkey_ver, aux })
}

/// The writer of a file without AUX fields (RDB versions before 7, and some hand-made v7+ files).
const NO_AUX: Option<Writer> = None;

/// `redis/list-quicklist.rdb` and `librdb/quicklist.rdb` are byte-identical: one expectation.
const QUICKLIST_V8: Expect = loads(8, Crc::Verified, by("4.0.9", AUX_PREAMBLE), 2, list_quicklist_v8);
/// `librdb/ziplist_v3.rdb` and `redis-rdb-tools/ziplist_that_compresses_easily.rdb` are
/// byte-identical: one expectation.
const ZIPLIST_COMPRESSES_EASILY: Expect = loads(3, Crc::NoTrailer, NO_AUX, 1, ziplist_compresses_easily);
/// The dataset D reference dumps, written by SAVE and BGSAVE with `rdbcompression yes`.
const DATASET_D: Expect = loads(10, Crc::Verified, by("7.0.15", AUX_7), 22, dataset_d_compressed);

/// Every corpus file and what it must do, transcribed from `MANIFEST.md`.
static SPEC: &[(&str, Expect)] = &[
    // redis/: Redis's own tests/assets.
    ("redis/corrupt_empty_keys.rdb", loads(10, Crc::Verified, by(DEV, AUX_PREAMBLE), 0, redis_corrupt_empty_keys)),
    ("redis/corrupt_ziplist.rdb", Expect::Refused(Refusal::Corrupt { what: &["hash", "ziplist"], at_most: Some(494) })),
    ("redis/encodings.rdb", loads(4, Crc::NoTrailer, NO_AUX, 13, redis_encodings)),
    ("redis/hash-ziplist.rdb", loads(9, Crc::Verified, by(DEV, AUX_PREAMBLE), 1, redis_hash_ziplist)),
    ("redis/hash-zipmap.rdb", loads(3, Crc::NoTrailer, NO_AUX, 1, redis_hash_zipmap)),
    ("redis/list-quicklist.rdb", QUICKLIST_V8),
    (
        "redis/scriptbackup.rdb",
        loads(
            10,
            Crc::Verified,
            by(
                DEV,
                &[
                    "aof-preamble",
                    "ctime",
                    "lua",
                    "redis-bits",
                    "redis-ver",
                    "repl-id",
                    "repl-offset",
                    "repl-stream-db",
                    "used-mem",
                ],
            ),
            0,
            redis_scriptbackup,
        ),
    ),
    ("redis/zset-ziplist.rdb", loads(10, Crc::Verified, by(DEV, AUX_PREAMBLE), 1, redis_zset_ziplist)),
    // redis-7.0.15-generated/: written by the anchor redis-server 7.0.15.
    ("redis-7.0.15-generated/all_types_bgsave_v10.rdb", DATASET_D),
    (
        "redis-7.0.15-generated/all_types_nocompress_v10.rdb",
        loads(10, Crc::Verified, by("7.0.15", AUX_7), 22, dataset_d_uncompressed),
    ),
    ("redis-7.0.15-generated/all_types_v10.rdb", DATASET_D),
    (
        "redis-7.0.15-generated/checksum_disabled_v10.rdb",
        loads(10, Crc::Zero, by("7.0.15", AUX_7), 1, generated_checksum_disabled),
    ),
    ("redis-7.0.15-generated/empty_v10.rdb", loads(10, Crc::Verified, by("7.0.15", AUX_7), 0, no_keys)),
    (
        "redis-7.0.15-generated/expired_keys_v10.rdb",
        loads(10, Crc::Verified, by("7.0.15", AUX_7), 5, generated_expired_keys),
    ),
    ("redis-7.0.15-generated/function_v10.rdb", loads(10, Crc::Verified, by("7.0.15", AUX_7), 0, generated_function)),
    ("redis-7.0.15-generated/lfu_freq_v10.rdb", loads(10, Crc::Verified, by("7.0.15", AUX_7), 1, generated_lfu_freq)),
    ("redis-7.0.15-generated/lru_idle_v10.rdb", loads(10, Crc::Verified, by("7.0.15", AUX_7), 1, generated_lru_idle)),
    // redis-rdb-tools/: sripathikrishnan/redis-rdb-tools tests/dumps.
    ("redis-rdb-tools/dictionary.rdb", loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_dictionary)),
    (
        "redis-rdb-tools/easily_compressible_string_key.rdb",
        loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_easily_compressible_string_key),
    ),
    ("redis-rdb-tools/empty_database.rdb", loads(3, Crc::NoTrailer, NO_AUX, 0, no_keys)),
    ("redis-rdb-tools/hash_as_ziplist.rdb", loads(4, Crc::NoTrailer, NO_AUX, 1, rdbtools_hash_as_ziplist)),
    ("redis-rdb-tools/integer_keys.rdb", loads(3, Crc::NoTrailer, NO_AUX, 6, rdbtools_integer_keys)),
    ("redis-rdb-tools/intset_16.rdb", loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_intset_16)),
    ("redis-rdb-tools/intset_32.rdb", loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_intset_32)),
    ("redis-rdb-tools/intset_64.rdb", loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_intset_64)),
    ("redis-rdb-tools/keys_with_expiry.rdb", loads(4, Crc::NoTrailer, NO_AUX, 1, rdbtools_keys_with_expiry)),
    ("redis-rdb-tools/linkedlist.rdb", loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_linkedlist)),
    ("redis-rdb-tools/multiple_databases.rdb", loads(3, Crc::NoTrailer, NO_AUX, 2, rdbtools_multiple_databases)),
    (
        "redis-rdb-tools/non_ascii_values.rdb",
        loads(7, Crc::Verified, by("3.2.6", AUX_3_2), 6, rdbtools_non_ascii_values),
    ),
    ("redis-rdb-tools/parser_filters.rdb", loads(2, Crc::NoTrailer, NO_AUX, 43, rdbtools_parser_filters)),
    (
        "redis-rdb-tools/rdb_version_5_with_checksum.rdb",
        loads(5, Crc::Verified, NO_AUX, 6, rdbtools_rdb_version_5_with_checksum),
    ),
    (
        "redis-rdb-tools/rdb_version_8_with_64b_length_and_scores.rdb",
        loads(
            8,
            Crc::Verified,
            by("3.9.102", &["aof-preamble", "ctime", "redis-bits", "redis-ver", "repl-id", "repl-offset", "used-mem"]),
            2,
            rdbtools_rdb_version_8_with_64b_length_and_scores,
        ),
    ),
    (
        "redis-rdb-tools/redis_40_with_module.rdb",
        Expect::Refused(Refusal::ModuleValue { key: "foo", module: "ReJSON-RL" }),
    ),
    (
        "redis-rdb-tools/redis_50_with_streams.rdb",
        loads(9, Crc::Verified, by("999.999.999", AUX_PREAMBLE), 14, rdbtools_redis_50_with_streams),
    ),
    // MODULE_AUX id 13108621717840686081 names module type "test__rdb".
    ("redis-rdb-tools/redis_60_with_module_aux.rdb", Expect::Refused(Refusal::ModuleAux { module: "test__rdb" })),
    ("redis-rdb-tools/regular_set.rdb", loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_regular_set)),
    ("redis-rdb-tools/regular_sorted_set.rdb", loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_regular_sorted_set)),
    ("redis-rdb-tools/sorted_set_as_ziplist.rdb", loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_sorted_set_as_ziplist)),
    (
        "redis-rdb-tools/uncompressible_string_keys.rdb",
        loads(3, Crc::NoTrailer, NO_AUX, 3, rdbtools_uncompressible_string_keys),
    ),
    ("redis-rdb-tools/ziplist_that_compresses_easily.rdb", ZIPLIST_COMPRESSES_EASILY),
    (
        "redis-rdb-tools/ziplist_that_doesnt_compress.rdb",
        loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_ziplist_that_doesnt_compress),
    ),
    ("redis-rdb-tools/ziplist_with_integers.rdb", loads(6, Crc::Verified, NO_AUX, 1, rdbtools_ziplist_with_integers)),
    (
        "redis-rdb-tools/zipmap_that_compresses_easily.rdb",
        loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_zipmap_that_compresses_easily),
    ),
    (
        "redis-rdb-tools/zipmap_that_doesnt_compress.rdb",
        loads(3, Crc::NoTrailer, NO_AUX, 1, rdbtools_zipmap_that_doesnt_compress),
    ),
    ("redis-rdb-tools/zipmap_with_big_values.rdb", loads(6, Crc::Verified, NO_AUX, 1, rdbtools_zipmap_with_big_values)),
    // HDT3213-rdb/: HDT3213/rdb cases/ (only those not shared with redis-rdb-tools).
    ("HDT3213-rdb/expiration.rdb", loads(11, Crc::Verified, by("7.2.5", AUX_7), 2, hdt_expiration)),
    ("HDT3213-rdb/function.rdb", loads(11, Crc::Verified, by("7.2.5", AUX_7), 0, one_function_no_keys)),
    (
        "HDT3213-rdb/hash_as_listpack_with_hfe.rdb",
        loads(12, Crc::Verified, by("7.4.5", AUX_7), 1, hdt_hash_as_listpack_with_hfe),
    ),
    ("HDT3213-rdb/hash_with_hfe.rdb", loads(12, Crc::Verified, by("7.4.5", AUX_7), 1, hdt_hash_with_hfe)),
    ("HDT3213-rdb/issue27.rdb", loads(10, Crc::Verified, by("7.0.14", AUX_7), 1, hdt_issue27)),
    ("HDT3213-rdb/listpack.rdb", loads(10, Crc::Verified, by("7.0.4", AUX_7), 3, hdt_listpack)),
    ("HDT3213-rdb/memory.rdb", loads(9, Crc::Verified, by("6.0.6", AUX_PREAMBLE), 7, hdt_memory)),
    ("HDT3213-rdb/quicklist.rdb", loads(9, Crc::Verified, by("6.0.6", AUX_PREAMBLE), 1, hdt_quicklist)),
    ("HDT3213-rdb/set_listpack.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 1, hdt_set_listpack)),
    ("HDT3213-rdb/stream_listoacks_3.rdb", loads(12, Crc::Verified, by(DEV, AUX_7), 1, hdt_stream_listpacks_3)),
    (
        "HDT3213-rdb/stream_listpacks_1.rdb",
        loads(9, Crc::Verified, by("999.999.999", AUX_PREAMBLE), 5, hdt_stream_listpacks_1),
    ),
    ("HDT3213-rdb/stream_listpacks_2.rdb", loads(10, Crc::Verified, by("7.0.4", AUX_7), 1, hdt_stream_listpacks_2)),
    ("HDT3213-rdb/tree.rdb", loads(12, Crc::Verified, by(DEV, AUX_7), 7, hdt_tree)),
    // Valkey 9.0.1: magic VALKEY080, which Redis 7.0.15 rejects ("Wrong signature") and we read
    // as Valkey 9.0 writes it. "CRC not reached" in the manifest: its
    // decoder stopped early; the trailer is a real CRC-64.
    (
        "HDT3213-rdb/valkey_hash2_with_hfe.rdb",
        loads(
            80,
            Crc::Verified,
            by_valkey("9.0.1", &["aof-base", "ctime", "redis-bits", "used-mem", "valkey-ver"]),
            1,
            hdt_valkey_hash2_with_hfe,
        ),
    ),
    // Redis 7.0.15: "Zipmap integrity check failed".
    (
        "HDT3213-rdb/zipmap_big_len.rdb",
        Expect::Refused(Refusal::Corrupt { what: &["zipmap", "zimap_doesnt_compress"], at_most: None }),
    ),
    // rdb-rs/: badboy/rdb-rs tests/dumps (only those not shared with redis-rdb-tools).
    ("rdb-rs/hash_list_pack.rdb", loads(11, Crc::Verified, by("7.2.5", AUX_7), 5, rdbrs_hash_list_pack)),
    ("rdb-rs/multidb-skipping.rdb", loads(6, Crc::Verified, NO_AUX, 2, rdbrs_multidb_skipping)),
    ("rdb-rs/quicklist_with_multiple_nodes.rdb", loads(7, Crc::Verified, by("2.9.999", AUX_3_2), 1, rdbrs_quicklist)),
    ("rdb-rs/quicklist_with_one_node.rdb", loads(7, Crc::Verified, by("2.9.999", AUX_3_2), 1, rdbrs_quicklist)),
    // librdb/: redis/librdb test/dumps.
    ("librdb/100_lists.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 100, librdb_100_lists)),
    ("librdb/cluster_slot_info.rdb", loads(12, Crc::Verified, by(DEV, AUX_7_REPL), 1, librdb_cluster_slot_info)),
    ("librdb/empty.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 0, no_keys)),
    ("librdb/function.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 0, one_function_no_keys)),
    ("librdb/function2.rdb", loads(12, Crc::Verified, by(DEV, AUX_7), 10, librdb_function2)),
    ("librdb/future_v19.rdb", Expect::Refused(Refusal::UnsupportedVersion { version: 99 })),
    ("librdb/hash_lp_v11.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 2, librdb_hash_lp_v11)),
    (
        "librdb/hash_lp_with_hexpire_v12.rdb",
        loads(12, Crc::Verified, by(DEV, AUX_7), 1, librdb_hash_lp_with_hexpire_v12),
    ),
    ("librdb/hash_v3.rdb", loads(7, Crc::Verified, by("3.2.1", AUX_3_2), 1, librdb_hash_v3)),
    ("librdb/hash_with_expire_v12.rdb", loads(12, Crc::Verified, by(DEV, AUX_7), 1, librdb_hash_with_expire_v12)),
    ("librdb/hash_zl_v6.rdb", loads(9, Crc::Verified, by("6.0.16", AUX_PREAMBLE), 1, librdb_hash_zl_v6)),
    ("librdb/hash_zm_v2.rdb", loads(2, Crc::NoTrailer, NO_AUX, 1, librdb_hash_zm_v2)),
    (
        "librdb/invalid_chksum_v8.rdb",
        Expect::Refused(Refusal::Checksum { stored: 0xb477_e446_e98e_5402, computed: 0xa609_bb64_6599_0fe1 }),
    ),
    ("librdb/mem_policy_lfu.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 1, librdb_mem_policy_lfu)),
    ("librdb/mem_policy_lru.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 1, librdb_mem_policy_lru)),
    // MODULE_AUX id 13108621717840686080 names "test__rdb" (encoding version 0).
    ("librdb/misc_with_stream.rdb", Expect::Refused(Refusal::ModuleAux { module: "test__rdb" })),
    ("librdb/module.rdb", Expect::Refused(Refusal::ModuleValue { key: "key1", module: "test__rdb" })),
    ("librdb/module_aux.rdb", Expect::Refused(Refusal::ModuleAux { module: "test__rdb" })),
    // MODULE_AUX id 9418902062989404173 names "graphdata".
    ("librdb/module_aux_empty.rdb", Expect::Refused(Refusal::ModuleAux { module: "graphdata" })),
    // The MODULE_AUX comes before the module value `mykey`, so it is what refuses the file.
    ("librdb/module_aux_v12.rdb", Expect::Refused(Refusal::ModuleAux { module: "test__rdb" })),
    ("librdb/multiple_dbs.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 3, librdb_multiple_dbs)),
    ("librdb/multiple_lists_strings.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 6, librdb_multiple_lists_strings)),
    ("librdb/plain_list_v6.rdb", loads(6, Crc::Verified, NO_AUX, 1, librdb_plain_list_v6)),
    ("librdb/plain_set_v6.rdb", loads(6, Crc::Verified, NO_AUX, 1, librdb_plain_set_v6)),
    ("librdb/plain_zset_2_v11.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 1, librdb_plain_zset_2_v11)),
    ("librdb/plain_zset_v6.rdb", loads(6, Crc::Verified, NO_AUX, 1, librdb_plain_zset_v6)),
    ("librdb/quicklist.rdb", QUICKLIST_V8),
    ("librdb/quicklist2_v11.rdb", loads(11, Crc::Verified, by(DEV, AUX_7_REPL), 1, librdb_quicklist2_v11)),
    // Redis Enterprise opcode 0x6B at byte 280 ("unknown type/opcode 107 at 280").
    ("librdb/redis_ent_opcode_ram_lru.rdb", Expect::Refused(Refusal::UnknownType { byte: 107, offset: 280 })),
    (
        "librdb/script.rdb",
        loads(
            11,
            Crc::Zero,
            by("7.0.0", &["aof-base", "ctime", "lua", "redis-bits", "redis-ver", "used-mem"]),
            0,
            no_keys,
        ),
    ),
    (
        "librdb/script_legacy.rdb",
        loads(
            6,
            Crc::Verified,
            by("4.0.0", &["redis-bits", "redis-ver", "*__lua_script__48c949b7bad3ffd14e1059100eb202831fc1b16c__*"]),
            0,
            no_keys,
        ),
    ),
    ("librdb/set_expired_v11.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 1, librdb_set_expired_v11)),
    ("librdb/set_is_v11.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 1, librdb_set_is_v11)),
    ("librdb/set_lp_v11.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 1, librdb_set_lp_v11)),
    ("librdb/set_not_expired_v11.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 1, librdb_set_not_expired_v11)),
    ("librdb/single_key.rdb", loads(11, Crc::Verified, by(DEV, AUX_7_REPL), 1, librdb_single_key)),
    ("librdb/stream_v11.rdb", loads(11, Crc::Verified, by("7.1.242", AUX_7), 1, librdb_stream_v11)),
    ("librdb/string_int_encoded.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 57, librdb_string_int_encoded)),
    ("librdb/string_lzf.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 2, librdb_string_lzf)),
    ("librdb/ziplist_v3.rdb", ZIPLIST_COMPRESSES_EASILY),
    ("librdb/zset_lp_v11.rdb", loads(11, Crc::Verified, by(DEV, AUX_7), 1, librdb_zset_lp_v11)),
    ("librdb/zset_zl_v6.rdb", loads(6, Crc::Verified, NO_AUX, 1, librdb_zset_zl_v6)),
];

// ---------------------------------------------------------------------------------------------
// Per-file content checks, transcribed from MANIFEST.md.
// ---------------------------------------------------------------------------------------------

/// A file with no keys and no function libraries.
fn no_keys(c: &mut Check<'_>) {
    c.no_other_keys();
}

/// A file whose only content is one function library (FUNCTION2 opcode), no keys.
fn one_function_no_keys(c: &mut Check<'_>) {
    c.functions(1);
    c.no_other_keys();
}

// ---- redis/ ---------------------------------------------------------------------------------

/// Nine empty collections, all skipped (corrupt-dump.tcl: `dbsize 0`, `empty keys skipped: 9`).
fn redis_corrupt_empty_keys(c: &mut Check<'_>) {
    c.skipped(&[
        (0, "set", "set"),
        (0, "hash", "hash"),
        (0, "list_ziplist", "list_ziplist"),
        (0, "zset", "zset_2"),
        (0, "zset_listpack", "zset_listpack"),
        (0, "hash_ziplist", "hash_listpack"),
        (0, "list_quicklist", "list_quicklist"),
        (0, "zset_ziplist", "zset_ziplist"),
        (0, "list_quicklist_empty_ziplist", "list_quicklist"),
    ]);
    c.no_other_keys();
}

/// The `csvdump` of db0 that rdb.tcl "RDB encoding loading test" expects, with the types the
/// manifest's decoder found.
fn redis_encodings(c: &mut Check<'_>) {
    let mixed = ["1", "2", "3", "a", "b", "c", "100000", "6000000000"];
    c.key(0, "compressible").string("a".repeat(137));
    c.key(0, "hash").hash(&[
        ("a", "1"),
        ("aa", "10"),
        ("aaa", "100"),
        ("b", "2"),
        ("bb", "20"),
        ("bbb", "200"),
        ("c", "3"),
        ("cc", "30"),
        ("ccc", "300"),
        ("ddd", "400"),
        ("eee", "5000000000"),
    ]);
    c.key(0, "hash_zipped").rdb_type("hash_ziplist").hash(&[("a", "1"), ("b", "2"), ("c", "3")]);
    c.key(0, "list").rdb_type("list").list(&mixed.repeat(3)[..]);
    c.key(0, "list_zipped").rdb_type("list_ziplist").list(&mixed);
    c.key(0, "number").string("10");
    c.key(0, "set").rdb_type("set").set(&["1", "100000", "2", "3", "6000000000", "a", "b", "c"]);
    c.key(0, "set_zipped_1").rdb_type("set_intset").set(&["1", "2", "3", "4"]);
    c.key(0, "set_zipped_2").rdb_type("set_intset").set(&["100000", "200000", "300000", "400000"]);
    c.key(0, "set_zipped_3").rdb_type("set_intset").set(&ints(&[
        1_000_000_000,
        2_000_000_000,
        3_000_000_000,
        4_000_000_000,
        5_000_000_000,
        6_000_000_000,
    ]));
    c.key(0, "string").string("Hello World");
    c.key(0, "zset").rdb_type("zset").zset(&[
        ("a", 1.0),
        ("b", 2.0),
        ("c", 3.0),
        ("aa", 10.0),
        ("bb", 20.0),
        ("cc", 30.0),
        ("aaa", 100.0),
        ("bbb", 200.0),
        ("ccc", 300.0),
        ("aaaa", 1000.0),
        ("cccc", 123_456_789.0),
        ("bbbb", 5_000_000_000.0),
    ]);
    c.key(0, "zset_zipped").rdb_type("zset_ziplist").zset(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]);
    c.no_other_keys();
}

/// convert-ziplist-hash-on-load.tcl: `hash` = {f1:v1, f2:v2} as a ziplist.
fn redis_hash_ziplist(c: &mut Check<'_>) {
    c.key(0, "hash").rdb_type("hash_ziplist").hash(&[("f1", "v1"), ("f2", "v2")]);
    c.no_other_keys();
}

/// convert-zipmap-hash-on-load.tcl: `hash` = {f1:v1, f2:v2} as a zipmap.
fn redis_hash_zipmap(c: &mut Check<'_>) {
    c.key(0, "hash").rdb_type("hash_zipmap").hash(&[("f1", "v1"), ("f2", "v2")]);
    c.no_other_keys();
}

/// rdb.tcl "test old version rdb file": `GET x` is 7 and `LPOP list` is 7 (a one-element quicklist).
fn list_quicklist_v8(c: &mut Check<'_>) {
    c.key(0, "list").rdb_type("list_quicklist").list(&["7"]);
    c.key(0, "x").string("7");
    c.no_other_keys();
}

/// rdb.tcl "script won't load anymore if it's in rdb": an AUX `lua` field and no keys.
fn redis_scriptbackup(c: &mut Check<'_>) {
    c.aux("lua", "return redis.call('set', 'foo', 'bar')");
    c.no_other_keys();
}

/// convert-ziplist-zset-on-load.tcl: `zset` = {one:1, two:2} as a ziplist.
fn redis_zset_ziplist(c: &mut Check<'_>) {
    c.key(0, "zset").rdb_type("zset_ziplist").zset(&[("one", 1.0), ("two", 2.0)]);
    c.no_other_keys();
}

// ---- redis-7.0.15-generated/ ----------------------------------------------------------------

/// Dataset D saved with `rdbcompression yes` (SAVE and BGSAVE).
fn dataset_d_compressed(c: &mut Check<'_>) {
    dataset_d(c, true);
}

/// Dataset D saved with `rdbcompression no`: same contents, and no LZF string anywhere.
fn dataset_d_uncompressed(c: &mut Check<'_>) {
    dataset_d(c, false);
    c.no_string_encoded(StringEncoding::Lzf);
}

/// Dataset D, the manifest's common dataset of the redis-7.0.15-generated dumps, key by key, with
/// the encodings the manifest observed (strings) and listed (collection types). `lzf` says whether
/// the dump was written with compression, which decides how `str:21` and `str:lzf` are stored.
fn dataset_d(c: &mut Check<'_>, lzf: bool) {
    use StringEncoding::{Int8, Int16, Int32, Lzf, Raw};
    let long = if lzf { Lzf } else { Raw };
    c.key(0, "str:small").string("hello").encoded(Raw);
    c.key(0, "str:int").string("12345").encoded(Int16);
    c.key(0, "str:int8").string("-100").encoded(Int8);
    c.key(0, "str:int32").string("2147483647").encoded(Int32);
    c.key(0, "str:int64").string("9223372036854775807").encoded(Raw);
    c.key(0, "str:leading0").string("0123").encoded(Raw);
    c.key(0, "str:empty").string("").encoded(Raw);
    c.key(0, "str:20").string("a".repeat(20)).encoded(Raw);
    c.key(0, "str:21").string("a".repeat(21)).encoded(long);
    c.key(0, "str:lzf").string("a".repeat(100)).encoded(long);
    c.key(0, "str:ttl").string("v").expires(4_102_444_800_000);
    c.key(0, "list:small").rdb_type("list_quicklist_2").list(&["a", "b", "c", "1", "2", "3"]);
    c.key(0, "list:big").rdb_type("list_quicklist_2").list(&numbered("elem", 1..=600));
    c.key(0, "set:int").rdb_type("set_intset").set(&["1", "2", "3"]);
    c.key(0, "set:str").rdb_type("set").set(&["a", "b", "c"]);
    c.key(0, "set:bigint").rdb_type("set").set(&numbered("", 1..=600));
    c.key(0, "zset:small").rdb_type("zset_listpack").zset(&[("a", 1.0), ("b", 2.5), ("c", f64::NEG_INFINITY)]);
    // `ZADD zset:big i m<i>`: the score is i, the member is "m<i>".
    let zbig: Vec<(String, f64)> = (1..=200).map(|i| (format!("m{i}"), f64::from(i))).collect();
    c.key(0, "zset:big").rdb_type("zset_2").zset(&zbig);
    c.key(0, "hash:small").rdb_type("hash_listpack").hash(&[("f1", "v1"), ("f2", "v2")]);
    let hbig: Vec<(String, String)> = (1..=600).map(|i| (format!("f{i}"), format!("v{i}"))).collect();
    c.key(0, "hash:big").rdb_type("hash").hash(&hbig);
    c.key(0, "stream:s").opaque("stream_listpacks_2");
    c.key(3, "db3key").string("x");
    c.no_other_keys();
    // 7.0.15 loading it: db0:keys=21,expires=1 db3:keys=1,expires=0.
    c.db_counts(0, 21, 1);
    c.db_counts(3, 1, 0);
}

/// `--rdbchecksum no`, `SET k v`: the trailer is eight zero bytes.
fn generated_checksum_disabled(c: &mut Check<'_>) {
    c.key(0, "k").string("v");
    c.no_other_keys();
}

/// Three keys that had expired when saved, one that expires in 2100, one without expiry; all five
/// are kept (a master would drop the three, as 7.0.15 did).
fn generated_expired_keys(c: &mut Check<'_>) {
    c.key(0, "expired:1").string("v").expires(1_795_300_055_460);
    c.key(0, "expired:2").string("v").expires(1_795_300_055_481);
    c.key(0, "expired:3").string("v").expires(1_795_300_055_511);
    c.key(0, "live").string("v").expires(4_102_444_800_000);
    c.key(0, "noexp").string("v");
    c.no_other_keys();
    c.db_counts(0, 5, 4);
}

/// `FUNCTION LOAD "#!lua name=mylib ..."`: one library, no keys.
fn generated_function(c: &mut Check<'_>) {
    c.functions(1);
    c.function(0, "#!lua name=mylib", "redis.register_function('myfunc', function(keys, args) return 1 end)");
    c.no_other_keys();
}

/// `allkeys-lfu`, `SET k v`, 50 GETs: a FREQ opcode with counter 9 before `k`.
fn generated_lfu_freq(c: &mut Check<'_>) {
    c.key(0, "k").string("v").lfu(9);
    c.no_other_keys();
}

/// `allkeys-lru`, `SET k v`: an IDLE opcode of 0 s before `k`.
fn generated_lru_idle(c: &mut Check<'_>) {
    c.key(0, "k").string("v").idle(0);
    c.no_other_keys();
}

// ---- redis-rdb-tools/ -----------------------------------------------------------------------

/// `force_dictionary`: a plain hash of 1000 fields, two of them asserted by parser_tests.py.
fn rdbtools_dictionary(c: &mut Check<'_>) {
    c.key(0, "force_dictionary").rdb_type("hash").hash_len(1000).hash_has(&[
        ("ZMU5WEJDG7KU89AOG5LJT6K7HMNB3DEI43M6EYTJ83VRJ6XNXQ", "T63SOS8DQJF0Q0VJEZ0D1IQFCYTIPSBOUIAI9SB0OV57MQR1FI"),
        ("UHS5ESW4HLK8XOGTM39IK1SJEUGVV9WOPK6JYA5QBZSJU84491", "6VULTCV52FXJ8MGVSFTZVAGK2JXZMGQ5F8OVJI0X6GEDDR27RZ"),
    ]);
    c.no_other_keys();
}

/// An LZF-compressed key of 200 `a`s.
fn rdbtools_easily_compressible_string_key(c: &mut Check<'_>) {
    c.key(0, "a".repeat(200)).string("Key that redis should compress easily");
    c.no_other_keys();
}

/// The hash {a:aa, aa:aaaa, aaaaa:aaaaaaaaaaaaaa} shared by three redis-rdb-tools dumps.
const COMPRESSES_EASILY: [(&str, &str); 3] = [("a", "aa"), ("aa", "aaaa"), ("aaaaa", "aaaaaaaaaaaaaa")];

/// RDB v4 hash as a ziplist.
fn rdbtools_hash_as_ziplist(c: &mut Check<'_>) {
    c.key(0, "zipmap_compresses_easily").rdb_type("hash_ziplist").hash(&COMPRESSES_EASILY);
    c.no_other_keys();
}

/// Integer-encoded keys of 8, 16 and 32 bits, both signs.
fn rdbtools_integer_keys(c: &mut Check<'_>) {
    c.key(0, "125").string("Positive 8 bit integer");
    c.key(0, (0xABAB).to_string()).string("Positive 16 bit integer");
    c.key(0, (0x0AED_D325).to_string()).string("Positive 32 bit integer");
    c.key(0, "-123").string("Negative 8 bit integer");
    c.key(0, (-0x7325).to_string()).string("Negative 16 bit integer");
    c.key(0, (-0x0AED_D325).to_string()).string("Negative 32 bit integer");
    c.no_other_keys();
}

/// `intset_16` = {0x7ffe, 0x7ffd, 0x7ffc}.
fn rdbtools_intset_16(c: &mut Check<'_>) {
    c.key(0, "intset_16").rdb_type("set_intset").set(&ints(&[0x7ffe, 0x7ffd, 0x7ffc]));
    c.no_other_keys();
}

/// `intset_32` = {0x7ffefffe, 0x7ffefffd, 0x7ffefffc}.
fn rdbtools_intset_32(c: &mut Check<'_>) {
    c.key(0, "intset_32").rdb_type("set_intset").set(&ints(&[0x7ffe_fffe, 0x7ffe_fffd, 0x7ffe_fffc]));
    c.no_other_keys();
}

/// `intset_64` = {0x7ffefffefffefffe, …fffd, …fffc}.
fn rdbtools_intset_64(c: &mut Check<'_>) {
    c.key(0, "intset_64").rdb_type("set_intset").set(&ints(&[
        0x7ffe_fffe_fffe_fffe,
        0x7ffe_fffe_fffe_fffd,
        0x7ffe_fffe_fffe_fffc,
    ]));
    c.no_other_keys();
}

/// `expires_ms_precision` expires at 2022-12-25 10:11:12.573 UTC and is kept although past.
fn rdbtools_keys_with_expiry(c: &mut Check<'_>) {
    c.key(0, "expires_ms_precision").string("2022-12-25 10:11:12.573 UTC").expires(1_671_963_072_573);
    c.no_other_keys();
}

/// `force_linkedlist`: a plain list of 1000 elements including two asserted ones.
fn rdbtools_linkedlist(c: &mut Check<'_>) {
    c.key(0, "force_linkedlist").rdb_type("list").list_len(1000).list_contains(&[
        "JYY4GIFI0ETHKP4VAJF5333082J4R1UPNPLE329YT0EYPGHSJQ",
        "TKBXHJOX9Q99ICF4V78XTCA2Y1UYW6ERL35JCIL1O0KSGXS58S",
    ]);
    c.no_other_keys();
}

/// One key in db0, one in db2, none in db1.
fn rdbtools_multiple_databases(c: &mut Check<'_>) {
    c.key(0, "key_in_zeroth_database").string("zero");
    c.key(2, "key_in_second_database").string("second");
    c.no_other_keys();
    c.db_counts(1, 0, 0);
}

/// Binary, control-character and UTF-8 values and an integer-encoded key (callbacks_tests.py).
fn rdbtools_non_ascii_values(c: &mut Check<'_>) {
    c.key(0, "int_value").string("123");
    c.key(0, "ascii").string(b"\x00! ~0\n\t\rAb");
    c.key(0, "bin").string(hex("0024207e307fff0aaa09800d4162"));
    c.key(0, "printable").string("!+ Ab^~");
    c.key(0, "378").string("int_key_name");
    c.key(0, "utf8").string("בדיקה𐀏123עברית");
    c.no_other_keys();
}

/// 43 keys; the listed ones, and the two filters parser_tests.py applies: `k[0-9]` selects exactly
/// k1 and k3, type `sortedset` exactly z1..z4.
fn rdbtools_parser_filters(c: &mut Check<'_>) {
    c.key(0, "k1").string("ssssssss");
    c.key(0, "k3").string("wwwwwwww");
    c.key(0, "s1").string_starts_with(".ahaa bit longer and with spa");
    c.key(0, "s2").string("now_exists");
    c.key(0, "n5b").string("1000");
    c.key(0, "l10").rdb_type("list_ziplist").list_len(4);
    c.key(0, "l11").rdb_type("list_ziplist").list_len(3);
    c.key(0, "l12").rdb_type("list_ziplist").list_len(3);
    c.key(0, "b1").string(b"\xff");
    c.key(0, "b2").string(b"\x00\xff");
    c.key(0, "b3").string(b"\x00\x00\xff");
    c.key(0, "b4").string(b"\x00\x00\x00\xff");
    c.keys_where(
        0,
        "match the key filter k[0-9]",
        |k, _| k.len() >= 2 && k[0] == b'k' && k[1].is_ascii_digit(),
        &["k1", "k3"],
    );
    c.keys_where(0, "are sorted sets", |_, v| matches!(v, Value::ZSet(_)), &["z1", "z2", "z3", "z4"]);
}

/// The first RDB version with a CRC trailer: six strings.
fn rdbtools_rdb_version_5_with_checksum(c: &mut Check<'_>) {
    c.key(0, "abcd").string("efgh");
    c.key(0, "foo").string("bar");
    c.key(0, "bar").string("baz");
    c.key(0, "abcdef").string("abcdef");
    c.key(0, "longerstring").string("thisisalongerstring.idontknowwhatitmeans");
    c.key(0, "abc").string("def");
    c.no_other_keys();
}

/// Binary-double scores: `bigset` has 1000 members, `finalfield` scores 2.718.
#[allow(clippy::approx_constant)] // 2.718 is the score in the dump, not an approximation of e.
fn rdbtools_rdb_version_8_with_64b_length_and_scores(c: &mut Check<'_>) {
    c.key(0, "foo").string("bar");
    c.key(0, "bigset").rdb_type("zset_2").zset_len(1000).zset_has(&[("finalfield", 2.718)]);
    c.no_other_keys();
}

/// The encodings.rdb dataset written by a 5.0 development build, plus a type-15 stream.
fn rdbtools_redis_50_with_streams(c: &mut Check<'_>) {
    c.key(0, "set").rdb_type("set").set_len(8);
    c.key(0, "string").string("Hello World");
    c.key(0, "hash").rdb_type("hash_ziplist").hash_len(11);
    c.key(0, "list").rdb_type("list_quicklist").list_len(24);
    c.key(0, "set_zipped_1").rdb_type("set_intset").set_len(4);
    c.key(0, "zset_zipped").rdb_type("zset_ziplist").zset_len(3);
    c.key(0, "set_zipped_2").rdb_type("set_intset").set_len(4);
    c.key(0, "compressible").string_starts_with("a".repeat(29));
    c.key(0, "list_zipped").rdb_type("list_quicklist").list_len(8);
    c.key(0, "set_zipped_3").rdb_type("set_intset").set_len(6);
    c.key(0, "zset").rdb_type("zset_ziplist").zset_len(12);
    c.key(0, "number").string("10");
    c.key(0, "mystream").opaque("stream_listpacks");
}

/// `regular_set` = {alpha, beta, gamma, delta, phi, kappa}.
fn rdbtools_regular_set(c: &mut Check<'_>) {
    c.key(0, "regular_set").rdb_type("set").set(&["alpha", "beta", "gamma", "delta", "phi", "kappa"]);
    c.no_other_keys();
}

/// `force_sorted_set`: 500 members with string-encoded scores (type 3).
fn rdbtools_regular_sorted_set(c: &mut Check<'_>) {
    c.key(0, "force_sorted_set").rdb_type("zset").zset_len(500);
    c.no_other_keys();
}

/// Three members with scores 1, 2.37 and 3.423.
fn rdbtools_sorted_set_as_ziplist(c: &mut Check<'_>) {
    c.key(0, "sorted_set_as_ziplist").rdb_type("zset_ziplist").zset(&[
        ("8b6ba6718a786daefa69438148361901", 1.0),
        ("cb7a24bb7528f934b841b34c3a73e0c7", 2.37),
        ("523af537946b79c4f8369ed39ba78605", 3.423),
    ]);
    c.no_other_keys();
}

/// Keys of 60, 16382 and 16386 bytes: the 6-bit, 14-bit and 32-bit length encodings.
fn rdbtools_uncompressible_string_keys(c: &mut Check<'_>) {
    c.key_starting_with(0, "ZA25VAYWA823P3DZINAYX06VGC2YF").key_len(60).string("Key length within 6 bits");
    c.key_starting_with(0, "BGIXRRCZ5LCWBBQQIR0OBQ9SFKPE3")
        .key_len(16382)
        .string_starts_with("Key length more than 6 bits b");
    c.key_starting_with(0, "ZAKL0TSL0E9SQJFG8PB20YRWNOOYT")
        .key_len(16386)
        .string_starts_with("Key length more than 14 bits ");
    c.no_other_keys();
}

/// A ziplist of six strings of 6, 12, …, 36 `a`s, in that order.
fn ziplist_compresses_easily(c: &mut Check<'_>) {
    let expected: Vec<String> = [6, 12, 18, 24, 30, 36].iter().map(|&n| "a".repeat(n)).collect();
    c.key(0, "ziplist_compresses_easily").rdb_type("list_ziplist").list(&expected);
    c.no_other_keys();
}

/// A ziplist of two elements.
fn rdbtools_ziplist_that_doesnt_compress(c: &mut Check<'_>) {
    c.key(0, "ziplist_doesnt_compress")
        .rdb_type("list_ziplist")
        .list_elements_in_any_order(&["aj2410", "cc953a17a8e096e76a44169ad3f9ac87c5f8248a403274416179aa9fbd852344"]);
    c.no_other_keys();
}

/// 24 integers covering every ziplist integer encoding.
fn rdbtools_ziplist_with_integers(c: &mut Check<'_>) {
    let mut expected: Vec<i64> = (0..=12).collect();
    expected.extend([-2, 13, 25, -61, 63, 16380, -16000, 65535, -65523, 4_194_304, 0x7fff_ffff_ffff_ffff]);
    c.key(0, "ziplist_with_integers").rdb_type("list_ziplist").list_elements_in_any_order(&ints(&expected));
    c.no_other_keys();
}

/// The same hash as hash_as_ziplist.rdb, as a zipmap.
fn rdbtools_zipmap_that_compresses_easily(c: &mut Check<'_>) {
    c.key(0, "zipmap_compresses_easily").rdb_type("hash_zipmap").hash(&COMPRESSES_EASILY);
    c.no_other_keys();
}

/// `zimap_doesnt_compress` (sic) = {MKD1G6: 2, YNNXK: F7TI}.
fn rdbtools_zipmap_that_doesnt_compress(c: &mut Check<'_>) {
    c.key(0, "zimap_doesnt_compress").rdb_type("hash_zipmap").hash(&[("MKD1G6", "2"), ("YNNXK", "F7TI")]);
    c.no_other_keys();
}

/// A hash ziplist whose values sit on the ziplist length-prefix boundaries.
fn rdbtools_zipmap_with_big_values(c: &mut Check<'_>) {
    c.key(0, "zipmap_with_big_values")
        .rdb_type("hash_ziplist")
        .hash_len(5)
        .hash_value_len("253bytes", 253)
        .hash_value_len("254bytes", 254)
        .hash_value_len("255bytes", 255)
        .hash_value_len("300bytes", 300)
        .hash_value_len("20kbytes", 20000);
    c.no_other_keys();
}

// ---- HDT3213-rdb/ ---------------------------------------------------------------------------

/// `expired` expires at 1751792339236 ms (kept), `noexpire` has no expiry.
fn hdt_expiration(c: &mut Check<'_>) {
    c.key(0, "noexpire").string("1");
    c.key(0, "expired").string("1").expires(1_751_792_339_236);
    c.no_other_keys();
}

/// A Redis 7.4 type-25 hash with field expiry, carried opaque.
fn hdt_hash_as_listpack_with_hfe(c: &mut Check<'_>) {
    c.key(0, "listpack-hfe").opaque("hash_listpack_ex");
    c.no_other_keys();
}

/// Valkey 9's type 22 (HASH_2, a hash with field expiry) `hash2-hfe`: its fields F1 and F2 expire,
/// so it is carried opaque as Redis's type 22 (absolute field TTLs), named `hash_2` as found.
fn hdt_valkey_hash2_with_hfe(c: &mut Check<'_>) {
    c.key(0, "hash2-hfe").opaque("hash_metadata_pre_ga").encoding("hash_2");
    c.no_other_keys();
}

/// A Redis 7.4 type-24 hash with field expiry, carried opaque.
fn hdt_hash_with_hfe(c: &mut Check<'_>) {
    c.key(0, "hash-hfe").opaque("hash_metadata");
    c.no_other_keys();
}

/// One big type-19 stream (10098 entries in 101 listpacks), carried opaque.
fn hdt_issue27(c: &mut Check<'_>) {
    c.key(0, "mytest").opaque("stream_listpacks_2");
    c.no_other_keys();
}

/// Redis 7.0.4 listpack encodings: a list, a sorted set and a hash.
fn hdt_listpack(c: &mut Check<'_>) {
    c.key(0, "l").rdb_type("list_quicklist_2").list_len(9);
    c.key(0, "z").rdb_type("zset_listpack").zset_len(12);
    c.key(0, "h").rdb_type("hash_listpack").hash_len(11);
    c.no_other_keys();
}

/// Seven keys of every type; `e` has an expiry in the past and is kept.
fn hdt_memory(c: &mut Check<'_>) {
    c.key(0, "hash").rdb_type("hash_ziplist").hash_len(2);
    c.key(0, "s").string("aaaaaaa");
    c.key(0, "e").string("zxcvb").expires(1_645_136_129_180);
    c.key(0, "list").rdb_type("list_quicklist").list_len(4);
    c.key(0, "zset").rdb_type("zset_ziplist").zset_len(2);
    c.key(0, "large").string_starts_with("7sqlkn50jsn9zh2hrp3kj9tvumyoj");
    c.key(0, "set").rdb_type("set").set_len(2);
    c.no_other_keys();
}

/// A Redis 6.0.6 quicklist of six elements.
fn hdt_quicklist(c: &mut Check<'_>) {
    c.key(0, "list").rdb_type("list_quicklist").list_len(6);
    c.no_other_keys();
}

/// A Redis 7.2 type-20 set listpack `s` = {a, b, c, d}.
fn hdt_set_listpack(c: &mut Check<'_>) {
    c.key(0, "s").rdb_type("set_listpack").set(&["a", "b", "c", "d"]);
    c.no_other_keys();
}

/// A Redis 7.2 type-21 stream, carried opaque.
fn hdt_stream_listpacks_3(c: &mut Check<'_>) {
    c.key(0, "mystream").opaque("stream_listpacks_3");
    c.no_other_keys();
}

/// Five type-15 streams, carried opaque.
fn hdt_stream_listpacks_1(c: &mut Check<'_>) {
    for name in ["test", "my", "trim", "listpack", "nums"] {
        c.key(0, name).opaque("stream_listpacks");
    }
    c.no_other_keys();
}

/// A Redis 7.0.4 type-19 stream, carried opaque.
fn hdt_stream_listpacks_2(c: &mut Check<'_>) {
    c.key(0, "astream").opaque("stream_listpacks_2");
    c.no_other_keys();
}

/// Seven string keys forming a prefix tree.
fn hdt_tree(c: &mut Check<'_>) {
    c.key(0, "abc").string("nnnnnnnnnnnnnnnnnnn");
    c.key(0, "abbd").string("abbbbbbbbbbbbbb");
    c.key(0, "a").string("a");
    c.key(0, "abba").string("aaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    c.key(0, "ab").string("bbbbbbbbbb");
    c.key(0, "b").string("bbbbbbbb");
    c.key(0, "abb").string("uuuuuuuuuuuuuuuuuuuuuuuuuuu");
    c.no_other_keys();
}

// ---- rdb-rs/ --------------------------------------------------------------------------------

/// Five Redis 7.2.5 listpack hashes of 8 fields with binary keys starting `02 00 00 00 driver_id`.
fn rdbrs_hash_list_pack(c: &mut Check<'_>) {
    let keys = c.keys_starting_with(0, hex("020000006472697665725f6964"));
    if keys.len() != 5 {
        c.fail(format!("expected 5 keys starting with 0x020000006472697665725f6964, found {}", keys.len()));
    }
    for key in keys {
        c.key(0, key).rdb_type("hash_listpack").hash_len(8);
    }
    c.no_other_keys();
}

/// `foo` = `bar` in db0 and again in db1.
fn rdbrs_multidb_skipping(c: &mut Check<'_>) {
    c.key(0, "foo").string("bar");
    c.key(1, "foo").string("bar");
    c.no_other_keys();
}

/// The same seven-element list in one or several quicklist nodes (rdb-rs plain output).
fn rdbrs_quicklist(c: &mut Check<'_>) {
    c.key(0, "quicklist").rdb_type("list_quicklist").list(&["baaaaaaaaaaaaaaam", "baz", "3", "2", "1", "bar", "foo"]);
    c.no_other_keys();
}

// ---- librdb/ --------------------------------------------------------------------------------

/// `mylist1`..`mylist100`, each a quicklist of 100 random-float strings.
fn librdb_100_lists(c: &mut Check<'_>) {
    for i in 1..=100 {
        c.key(0, format!("mylist{i}"))
            .rdb_type("list_quicklist_2")
            .list_len(100)
            .list_all("a float", |e| std::str::from_utf8(e).ok().and_then(|s| s.parse::<f64>().ok()).is_some());
    }
    c.no_other_keys();
}

/// A SLOT_INFO opcode {slot 7638, size 1, expires 0} and the key `abc` = `abc`.
fn librdb_cluster_slot_info(c: &mut Check<'_>) {
    c.slot_info(&[(7638, 1, 0)]);
    c.key(0, "abc").string("abc");
    c.no_other_keys();
}

/// Two function libraries and `key_90`..`key_99` = `value_90`..`value_99`.
fn librdb_function2(c: &mut Check<'_>) {
    c.functions(2);
    for i in 90..=99 {
        c.key(0, format!("key_{i}")).string(format!("value_{i}"));
    }
    c.no_other_keys();
}

/// Two listpack hashes.
fn librdb_hash_lp_v11(c: &mut Check<'_>) {
    c.key(0, "hash2").rdb_type("hash_listpack").hash_len(6);
    c.key(0, "hash1").rdb_type("hash_listpack").hash_len(5);
    c.no_other_keys();
}

/// A type-23 hash with field expiry (7.4 release candidates), carried opaque.
fn librdb_hash_lp_with_hexpire_v12(c: &mut Check<'_>) {
    c.key(0, "myhash").opaque("hash_listpack_ex_pre_ga");
    c.no_other_keys();
}

/// A plain hash of 11 fields written by Redis 3.2.1.
fn librdb_hash_v3(c: &mut Check<'_>) {
    c.key(0, "myhash1").rdb_type("hash").hash_len(11);
    c.no_other_keys();
}

/// A type-22 hash with field expiry (7.4 release candidates), carried opaque.
fn librdb_hash_with_expire_v12(c: &mut Check<'_>) {
    c.key(0, "myhash").opaque("hash_metadata_pre_ga");
    c.no_other_keys();
}

/// A hash ziplist of 6 fields written by Redis 6.0.16.
fn librdb_hash_zl_v6(c: &mut Check<'_>) {
    c.key(0, "myhash").rdb_type("hash_ziplist").hash_len(6);
    c.no_other_keys();
}

/// A zipmap hash of 9 fields (RDB v2).
fn librdb_hash_zm_v2(c: &mut Check<'_>) {
    c.key(0, "myhash").rdb_type("hash_zipmap").hash_len(9);
    c.no_other_keys();
}

/// FREQ opcode: librdb expects `RESTORE … FREQ 5`.
fn librdb_mem_policy_lfu(c: &mut Check<'_>) {
    c.key(0, "abcdefghijk").string("012345789abcdefghik").lfu(5);
    c.no_other_keys();
}

/// IDLE opcode: librdb expects `RESTORE … IDLETIME 24`.
fn librdb_mem_policy_lru(c: &mut Check<'_>) {
    c.key(0, "abcdefghijk").string("012345789abcdefghik").idle(24);
    c.no_other_keys();
}

/// db0 x=0, db1 y=1, db2 z=2.
fn librdb_multiple_dbs(c: &mut Check<'_>) {
    c.key(0, "x").string("0");
    c.key(1, "y").string("1");
    c.key(2, "z").string("2");
    c.no_other_keys();
}

/// Three lists and three strings, one of them LZF-sized.
fn librdb_multiple_lists_strings(c: &mut Check<'_>) {
    c.key(0, "string2").string("Hi there!");
    c.key(0, "mylist1").rdb_type("list_quicklist_2").list_len(1);
    c.key(0, "mylist3").rdb_type("list_quicklist_2").list_len(3);
    c.key(0, "lzf_compressed").string_starts_with("c".repeat(29));
    c.key(0, "string1").string("blaa");
    c.key(0, "mylist2").rdb_type("list_quicklist_2").list_len(2);
    c.no_other_keys();
}

/// A plain (linked) list `ll` of 513 elements.
fn librdb_plain_list_v6(c: &mut Check<'_>) {
    c.key(0, "ll").rdb_type("list").list_len(513);
    c.no_other_keys();
}

/// A plain set `myset` of 10 members.
fn librdb_plain_set_v6(c: &mut Check<'_>) {
    c.key(0, "myset").rdb_type("set").set_len(10);
    c.no_other_keys();
}

/// Type 5: 24 members including scores +inf and -inf.
fn librdb_plain_zset_2_v11(c: &mut Check<'_>) {
    c.key(0, "myzset").rdb_type("zset_2").zset_len(24).zset_has_score(f64::INFINITY).zset_has_score(f64::NEG_INFINITY);
    c.no_other_keys();
}

/// Type 3 (scores as strings, 254/255 = +inf/-inf): 24 members.
fn librdb_plain_zset_v6(c: &mut Check<'_>) {
    c.key(0, "myzset").rdb_type("zset").zset_len(24);
    c.no_other_keys();
}

/// A quicklist 2 of three elements.
fn librdb_quicklist2_v11(c: &mut Check<'_>) {
    c.key(0, "mylist").rdb_type("list_quicklist_2").list_len(3);
    c.no_other_keys();
}

/// `mykey` expires in 2023 and is kept (a master would drop it).
fn librdb_set_expired_v11(c: &mut Check<'_>) {
    c.key(0, "mykey").string("myval").expires(1_692_540_290_000);
    c.no_other_keys();
}

/// An intset of six members.
fn librdb_set_is_v11(c: &mut Check<'_>) {
    c.key(0, "myintest").rdb_type("set_intset").set_len(6);
    c.no_other_keys();
}

/// A type-20 set listpack of nine members.
fn librdb_set_lp_v11(c: &mut Check<'_>) {
    c.key(0, "myset").rdb_type("set_listpack").set_len(9);
    c.no_other_keys();
}

/// `mykey` expires in 2087.
fn librdb_set_not_expired_v11(c: &mut Check<'_>) {
    c.key(0, "mykey").string("myval").expires(3_692_539_827_000);
    c.no_other_keys();
}

/// `xxx` = `111`.
fn librdb_single_key(c: &mut Check<'_>) {
    c.key(0, "xxx").string("111");
    c.no_other_keys();
}

/// A type-21 stream with consumer groups, carried opaque.
fn librdb_stream_v11(c: &mut Check<'_>) {
    c.key(0, "mystream").opaque("stream_listpacks_3");
    c.no_other_keys();
}

/// 57 keys `str::<n>` = `<n>` around the integer-encoding boundaries: values that fit in 32 bits
/// are INT-encoded, the others raw.
fn librdb_string_int_encoded(c: &mut Check<'_>) {
    for n in [
        "-4294967295",
        "255",
        "-16777217",
        "16777218",
        "-4294967297",
        "257",
        "2147483649",
        "-16777215",
        "3",
        "-281474976710656",
        "-16777214",
        "-65534",
    ] {
        c.key(0, format!("str::{n}")).string(n);
    }
    for key in c.keys_starting_with(0, b"") {
        match key.strip_prefix(b"str::") {
            Some(n) => {
                let n = n.to_vec();
                let encoding = redis_int_encoding(&n);
                c.key(0, &key).string(&n).encoded(encoding);
            }
            None => c.fail(format!("key {} is not of the form str::<n>", show(&key))),
        }
    }
}

/// Two keys whose key and value are both LZF-compressed.
fn librdb_string_lzf(c: &mut Check<'_>) {
    c.key_starting_with(0, "y".repeat(29)).string_starts_with("B".repeat(29)).encoded(StringEncoding::Lzf);
    c.key(0, "x".repeat(26)).string_starts_with("A".repeat(29)).encoded(StringEncoding::Lzf);
    c.no_other_keys();
}

/// Type 17: 24 members including a score of -inf.
fn librdb_zset_lp_v11(c: &mut Check<'_>) {
    c.key(0, "myzset").rdb_type("zset_listpack").zset_len(24).zset_has_score(f64::NEG_INFINITY);
    c.no_other_keys();
}

/// Type 12: 24 members.
fn librdb_zset_zl_v6(c: &mut Check<'_>) {
    c.key(0, "myzset").rdb_type("zset_ziplist").zset_len(24);
    c.no_other_keys();
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

/// Every `.rdb` file in the corpus has exactly one row in SPEC, and every row names a file that exists.
#[test]
fn every_corpus_file_has_exactly_one_row() {
    let Some(root) = corpus_or_skip("every_corpus_file_has_exactly_one_row") else { return };
    let files = rdb_files(&root);
    let mut failures = Vec::new();
    let mut rows: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, _) in SPEC {
        *rows.entry(*file).or_default() += 1;
    }
    for (file, n) in &rows {
        if *n > 1 {
            failures.push(format!("{file}: {n} rows in SPEC"));
        }
        if !files.iter().any(|f| f.as_str() == *file) {
            failures.push(format!("{file}: has a row in SPEC but is not in the corpus"));
        }
    }
    for file in &files {
        if !rows.contains_key(file.as_str()) {
            failures.push(format!("{file}: no row in SPEC (tests/corpus.rs); add one from MANIFEST.md"));
        }
    }
    assert!(failures.is_empty(), "the corpus and SPEC disagree:\n{}", failures.join("\n"));
}

/// Every file under `redis/` (Redis's own test assets) meets its manifest row.
#[test]
fn redis_test_assets_meet_the_manifest() {
    run_dir("redis_test_assets_meet_the_manifest", "redis");
}

/// Every dump written by the anchor redis-server 7.0.15 meets its manifest row.
#[test]
fn redis_7_0_15_reference_dumps_meet_the_manifest() {
    run_dir("redis_7_0_15_reference_dumps_meet_the_manifest", "redis-7.0.15-generated");
}

/// Every redis-rdb-tools dump meets its manifest row.
#[test]
fn redis_rdb_tools_dumps_meet_the_manifest() {
    run_dir("redis_rdb_tools_dumps_meet_the_manifest", "redis-rdb-tools");
}

/// Every HDT3213/rdb dump meets its manifest row.
#[test]
fn hdt3213_rdb_dumps_meet_the_manifest() {
    run_dir("hdt3213_rdb_dumps_meet_the_manifest", "HDT3213-rdb");
}

/// Every rdb-rs dump meets its manifest row.
#[test]
fn rdb_rs_dumps_meet_the_manifest() {
    run_dir("rdb_rs_dumps_meet_the_manifest", "rdb-rs");
}

/// Every librdb dump meets its manifest row.
#[test]
fn librdb_dumps_meet_the_manifest() {
    run_dir("librdb_dumps_meet_the_manifest", "librdb");
}

/// The three saves of dataset D (SAVE, BGSAVE, SAVE without compression) decode to one keyspace.
/// Opaque values (the stream) are compared by RDB type only: they are carried byte for byte, and
/// with `rdbcompression yes` Redis stores the stream's listpack LZF-compressed.
#[test]
fn dataset_d_saves_decode_to_one_keyspace() {
    let Some(root) = corpus_or_skip("dataset_d_saves_decode_to_one_keyspace") else { return };
    let dir = root.join("redis-7.0.15-generated");
    let (reference, _) = rdb::load_file(&dir.join("all_types_v10.rdb")).expect("all_types_v10.rdb loads");
    for other in ["all_types_bgsave_v10.rdb", "all_types_nocompress_v10.rdb"] {
        let (ks, _) = rdb::load_file(&dir.join(other)).unwrap_or_else(|e| panic!("{other} loads: {e}"));
        let differ = keys_that_differ(&reference, &ks);
        assert!(differ.is_empty(), "{other} and all_types_v10.rdb differ at {}", differ.join(", "));
    }
}

/// librdb's 24-member sorted set has the same members as type 3, type 5, ziplist and listpack.
#[test]
fn librdb_sorted_set_has_the_same_members_in_four_encodings() {
    let Some(root) = corpus_or_skip("librdb_sorted_set_has_the_same_members_in_four_encodings") else { return };
    let members = |file: &str| -> BTreeSet<Vec<u8>> {
        let (ks, _) = rdb::load_file(&root.join("librdb").join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        match ks.get(0, b"myzset").map(|e| &e.value) {
            Some(Value::ZSet(z)) => z.keys().cloned().collect(),
            other => panic!("{file}: myzset is {other:?}, not a sorted set"),
        }
    };
    let reference = members("plain_zset_2_v11.rdb");
    assert_eq!(reference.len(), 24);
    for file in ["plain_zset_v6.rdb", "zset_lp_v11.rdb", "zset_zl_v6.rdb"] {
        assert_eq!(members(file), reference, "{file}: members differ from plain_zset_2_v11.rdb");
    }
}

/// The byte-identical pairs MANIFEST.md names are identical, which is what lets them share one row.
#[test]
fn manifest_duplicates_are_byte_identical() {
    let Some(root) = corpus_or_skip("manifest_duplicates_are_byte_identical") else { return };
    for (a, b) in [
        ("redis/list-quicklist.rdb", "librdb/quicklist.rdb"),
        ("librdb/ziplist_v3.rdb", "redis-rdb-tools/ziplist_that_compresses_easily.rdb"),
    ] {
        let read = |f: &str| std::fs::read(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(read(a) == read(b), "{a} and {b} differ, but MANIFEST.md says they are byte-identical");
    }
}

// ---------------------------------------------------------------------------------------------
// Running a row.
// ---------------------------------------------------------------------------------------------

/// The corpus directory: `$SNAPLAB_CORPUS` if set, else `../shared/rdb-corpus` beside the repository.
fn corpus_dir() -> PathBuf {
    match std::env::var_os("SNAPLAB_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/rdb-corpus"),
    }
}

/// The corpus directory, or `None` after telling stderr that `test` skips because it is absent.
fn corpus_or_skip(test: &str) -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_dir() {
        Some(dir)
    } else {
        let why = format!("the RDB corpus is not at {} (set SNAPLAB_CORPUS to its path)", dir.display());
        snaplab_harness::skips::skipped(test, &why);
        None
    }
}

/// Every `.rdb` file under `root`, as sorted `/`-separated paths relative to it.
fn rdb_files(root: &Path) -> Vec<String> {
    /// Collect the `.rdb` files under `dir`, naming them `prefix/…`.
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            if entry.path().is_dir() {
                walk(&entry.path(), &rel, out);
            } else if name.ends_with(".rdb") {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out.sort();
    out
}

/// Hold every file under the corpus directory `dir` to its row; fail once, listing every file that
/// missed its row (or has none).
fn run_dir(test: &str, dir: &str) {
    let Some(root) = corpus_or_skip(test) else { return };
    let prefix = format!("{dir}/");
    let files: Vec<String> = rdb_files(&root).into_iter().filter(|f| f.starts_with(&prefix)).collect();
    assert!(!files.is_empty(), "no .rdb files under {}", root.join(dir).display());
    let mut failures = Vec::new();
    let mut missed = BTreeSet::new();
    for file in &files {
        let found = match SPEC.iter().find(|(f, _)| *f == file.as_str()) {
            Some((_, expect)) => run_row(&root, file, expect),
            None => vec![format!("{file}: no row in SPEC (tests/corpus.rs); add one from MANIFEST.md")],
        };
        if !found.is_empty() {
            missed.insert(file.clone());
        }
        failures.extend(found);
    }
    for (file, _) in SPEC.iter().filter(|(f, _)| f.starts_with(&prefix)) {
        if !files.iter().any(|f| f.as_str() == *file) {
            failures.push(format!("{file}: has a row in SPEC but is not in the corpus"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files under {dir}/ did not meet MANIFEST.md ({}):\n{}",
        missed.len(),
        files.len(),
        missed.iter().cloned().collect::<Vec<_>>().join(", "),
        failures.join("\n")
    );
}

/// Load `file` and hold it to `expect`; every way it falls short, as messages naming the file.
/// A panic anywhere in the reader (or in a check) becomes one such message.
fn run_row(root: &Path, file: &str, expect: &Expect) -> Vec<String> {
    let path = root.join(file);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => return vec![format!("cannot read the file: {e}")],
        };
        match (expect, open(&path, bytes.clone())) {
            (Expect::Loads(want), Ok(got)) => check_loaded(want, &got),
            (Expect::Loads(_), Err(e)) => vec![format!("expected it to load, but it was refused: {e}")],
            (Expect::Refused(want), Err(e)) => {
                let mut failures = check_refusal(want, &e, bytes.len() as u64);
                // Checking must refuse the file the same way, at the same byte.
                match rdb::check(bytes.as_slice()) {
                    Ok(_) => failures.push(format!("load_file refused it ({e}), but rdb::check accepted it")),
                    Err(c) if c.error.to_string() != e.to_string() => {
                        failures.push(format!("load_file refused it with \"{e}\", rdb::check with \"{}\"", c.error))
                    }
                    Err(_) => {}
                }
                failures
            }
            (Expect::Refused(want), Ok(got)) => {
                vec![format!("expected it to be refused with {want:?}, but it loaded {} keys", got.ks.len())]
            }
        }
    }));
    let failures = outcome.unwrap_or_else(|panic| vec![format!("the reader panicked: {}", panic_message(&*panic))]);
    failures.into_iter().map(|m| format!("{file}: {m}")).collect()
}

/// The keys (as `key in db N`) whose entries differ between `a` and `b`, or that only one holds;
/// opaque values count as equal when their RDB types are.
fn keys_that_differ(a: &Keyspace, b: &Keyspace) -> Vec<String> {
    let same = |x: &Entry, y: &Entry| match (&x.value, &y.value) {
        (Value::Opaque(p), Value::Opaque(q)) => p.rdb_type == q.rdb_type && x.expire_at_ms == y.expire_at_ms,
        _ => x == y,
    };
    let mut differ: Vec<String> = a
        .iter()
        .filter(|(db, key, entry)| b.get(*db, key).is_none_or(|other| !same(entry, other)))
        .chain(b.iter().filter(|(db, key, _)| a.get(*db, key).is_none()))
        .map(|(db, key, _)| format!("{} in db {db}", show(key)))
        .collect();
    differ.sort();
    differ
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// What the reader made of a file that loaded: `load_file`'s keyspace and summary, and the
/// streaming reader's item-by-item view of the same bytes.
struct Loaded {
    /// The file's bytes.
    bytes: Vec<u8>,
    /// The keyspace `load_file` built.
    ks: Keyspace,
    /// The summary `load_file` gathered.
    summary: LoadSummary,
    /// Every key the streaming reader yielded, in file order.
    records: Vec<KeyRecord>,
    /// Every empty collection the streaming reader skipped: (db, key, RDB type byte).
    skipped: Vec<(usize, Vec<u8>, u8)>,
    /// Every function library the streaming reader yielded.
    functions: Vec<Vec<u8>>,
    /// Every SLOT_INFO opcode the streaming reader yielded: (slot, keys, keys with an expiry).
    slot_info: Vec<(u64, u64, u64)>,
    /// What checking without building values ([`rdb::check`]) made of the same bytes.
    checked: Result<LoadSummary, rdb::CheckError>,
}

/// Read `path` with [`rdb::load_file`], then its `bytes` again with the streaming [`RdbReader`].
///
/// # Errors
/// The first [`RdbError`] either reader reports.
fn open(path: &Path, bytes: Vec<u8>) -> Result<Loaded, RdbError> {
    let (ks, summary) = rdb::load_file(path)?;
    let mut reader = RdbReader::new(bytes.as_slice())?;
    let (mut records, mut skipped, mut functions, mut slot_info) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    while let Some(item) = reader.next_item()? {
        match item {
            Item::Key(record) => records.push(record),
            Item::EmptyKeySkipped { db, key, rdb_type } => skipped.push((db, key, rdb_type)),
            Item::Function { code } => functions.push(code),
            Item::SlotInfo { slot, size, expires } => slot_info.push((slot, size, expires)),
            _ => {}
        }
    }
    let checked = rdb::check(bytes.as_slice());
    Ok(Loaded { bytes, ks, summary, records, skipped, functions, slot_info, checked })
}

/// Check a refusal against its row: the variant, the details the manifest gives, and an offset
/// inside the file.
fn check_refusal(want: &Refusal, err: &RdbError, file_len: u64) -> Vec<String> {
    let mut failures = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    match (want, err) {
        (Refusal::UnsupportedVersion { version: want_version }, RdbError::UnsupportedVersion { version }) => {
            expect(version == want_version, format!("refused version {version}, expected {want_version}"));
        }
        (Refusal::Checksum { stored: ws, computed: wc }, RdbError::Checksum { offset, stored, computed }) => {
            expect(
                (stored, computed) == (ws, wc),
                format!("checksum stored {stored:#018x} / computed {computed:#018x}, expected {ws:#018x} / {wc:#018x}"),
            );
            expect(
                *offset + 8 == file_len,
                format!("checksum error at byte {offset}, expected the trailer at byte {}", file_len.saturating_sub(8)),
            );
        }
        (Refusal::UnknownType { byte: wb, offset: wo }, RdbError::UnknownType { offset, byte }) => {
            expect((byte, offset) == (wb, wo), format!("unknown type {byte} at byte {offset}, expected {wb} at {wo}"));
        }
        (Refusal::Corrupt { what: words, at_most }, RdbError::Corrupt { offset, what, .. }) => {
            let lower = what.to_lowercase();
            for word in *words {
                expect(lower.contains(&word.to_lowercase()), format!("corrupt {what:?} should mention {word:?}"));
            }
            if let Some(max) = at_most {
                expect(offset <= max, format!("corrupt structure reported at byte {offset}, expected by byte {max}"));
            }
        }
        (Refusal::ModuleValue { key: wk, module: wm }, RdbError::ModuleValue { key, module, .. }) => {
            expect(
                (key.as_str(), module.as_str()) == (wk, wm),
                format!("module value of key {key:?} module {module:?}, expected key {wk:?} module {wm:?}"),
            );
        }
        (Refusal::ModuleAux { module: wm }, RdbError::ModuleAux { module, .. }) => {
            expect(module == wm, format!("module aux of {module:?}, expected {wm:?}"));
        }
        (want, err) => {
            expect(false, format!("expected to be refused with {want:?}, but the error is: {err} ({err:?})"))
        }
    }
    if err.offset() > file_len {
        failures.push(format!("error offset {} is beyond the file's {file_len} bytes: {err}", err.offset()));
    }
    failures
}

/// Check a loaded file: the row's header facts, the reader's own consistency, then the row's
/// content check.
fn check_loaded(want: &Loads, got: &Loaded) -> Vec<String> {
    let mut c = Check::new(got);
    c.header(want);
    c.consistency();
    (want.check)(&mut c);
    c.finish();
    c.failures
}

// ---------------------------------------------------------------------------------------------
// The checking vocabulary.
// ---------------------------------------------------------------------------------------------

/// The RDB value type byte for a manifest type name (Redis src/rdb.h, `RDB_TYPE_*`), written out
/// here rather than taken from the reader so that a wrong name table in the reader shows.
fn rdb_type_byte(name: &str) -> u8 {
    match name {
        "string" => 0,
        "list" => 1,
        "set" => 2,
        "zset" => 3,
        "hash" => 4,
        "zset_2" => 5,
        "module_pre_ga" => 6,
        "module_2" => 7,
        "hash_zipmap" => 9,
        "list_ziplist" => 10,
        "set_intset" => 11,
        "zset_ziplist" => 12,
        "hash_ziplist" => 13,
        "list_quicklist" => 14,
        "stream_listpacks" => 15,
        "hash_listpack" => 16,
        "zset_listpack" => 17,
        "list_quicklist_2" => 18,
        "stream_listpacks_2" => 19,
        "set_listpack" => 20,
        "stream_listpacks_3" => 21,
        "hash_metadata_pre_ga" => 22,
        "hash_listpack_ex_pre_ga" => 23,
        "hash_metadata" => 24,
        "hash_listpack_ex" => 25,
        other => panic!("unknown RDB type name {other:?} in tests/corpus.rs"),
    }
}

/// How Redis stores a string value (Redis src/rdb.c, `rdbTryIntegerEncoding` and
/// `rdbEncodeInteger`): a canonical decimal integer goes into the narrowest of 8, 16 or 32 bits
/// that holds it; anything else is raw (no LZF below 21 bytes).
fn redis_int_encoding(s: &[u8]) -> StringEncoding {
    let parsed = std::str::from_utf8(s).ok().and_then(|t| t.parse::<i64>().ok());
    match parsed {
        Some(n) if n.to_string().as_bytes() == s => {
            if i8::try_from(n).is_ok() {
                StringEncoding::Int8
            } else if i16::try_from(n).is_ok() {
                StringEncoding::Int16
            } else if i32::try_from(n).is_ok() {
                StringEncoding::Int32
            } else {
                StringEncoding::Raw
            }
        }
        _ => StringEncoding::Raw,
    }
}

/// `prefix1`, `prefix2`, … for every number in `range`.
fn numbered(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// Integers as the decimal strings Redis returns for them.
fn ints(values: &[i64]) -> Vec<String> {
    values.iter().map(i64::to_string).collect()
}

/// Bytes from a hex string (the manifest shows binary values as `0x…`).
fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits")).collect()
}

/// A byte string for a failure message: escaped, and shortened past 48 characters.
fn show(b: &[u8]) -> String {
    let escaped = b.escape_ascii().to_string();
    if escaped.len() > 48 { format!("\"{}…\" ({} bytes)", &escaped[..40], b.len()) } else { format!("\"{escaped}\"") }
}

/// A value for a failure message: its type and size.
fn describe(v: &Value) -> String {
    match v {
        Value::Opaque(o) => format!("an opaque value of RDB type {}", o.rdb_type),
        Value::String(s) => format!("the string {}", show(s)),
        other => format!("a {} of {} elements", other.type_name(), other.len()),
    }
}

/// Up to `n` items, comma-separated, with a count of the rest.
fn first<T: Display>(items: &[T], n: usize) -> String {
    let shown: Vec<String> = items.iter().take(n).map(ToString::to_string).collect();
    if items.len() > n { format!("{}, … ({} in all)", shown.join(", "), items.len()) } else { shown.join(", ") }
}

/// How two multisets of byte strings differ, or `None` when they are equal.
fn member_diff(want: &[&[u8]], found: &[&[u8]]) -> Option<String> {
    let mut count: BTreeMap<&[u8], i64> = BTreeMap::new();
    for m in want {
        *count.entry(m).or_default() += 1;
    }
    for m in found {
        *count.entry(m).or_default() -= 1;
    }
    let missing: Vec<String> = count.iter().filter(|(_, n)| **n > 0).map(|(m, _)| show(m)).collect();
    let unexpected: Vec<String> = count.iter().filter(|(_, n)| **n < 0).map(|(m, _)| show(m)).collect();
    if missing.is_empty() && unexpected.is_empty() {
        return None;
    }
    Some(format!(
        "{} expected, {} found; missing [{}]; unexpected [{}]",
        want.len(),
        found.len(),
        first(&missing, 5),
        first(&unexpected, 5)
    ))
}

/// The checks of one loaded file, collecting failures rather than stopping at the first.
struct Check<'a> {
    /// What the reader made of the file.
    got: &'a Loaded,
    /// The streaming reader's record of each (db, key).
    records: HashMap<(usize, Vec<u8>), &'a KeyRecord>,
    /// Keys a content check has described, for [`Check::no_other_keys`].
    described: BTreeSet<(usize, Vec<u8>)>,
    /// Whether the content check described the function libraries (otherwise there must be none).
    functions_described: bool,
    /// Whether the content check described skipped empty keys (otherwise there must be none).
    skipped_described: bool,
    /// Whether the content check described SLOT_INFO opcodes (otherwise there must be none).
    slot_info_described: bool,
    /// Everything that did not hold.
    failures: Vec<String>,
}

impl<'a> Check<'a> {
    /// Start checking `got`.
    fn new(got: &'a Loaded) -> Self {
        let records = got.records.iter().map(|r| ((r.db, r.key.clone()), r)).collect();
        Check {
            got,
            records,
            described: BTreeSet::new(),
            functions_described: false,
            skipped_described: false,
            slot_info_described: false,
            failures: Vec::new(),
        }
    }

    /// Record a failure.
    fn fail(&mut self, msg: impl Into<String>) {
        self.failures.push(msg.into());
    }

    /// The row's header facts: version, checksum, bytes read, writer and AUX names, key count.
    fn header(&mut self, want: &Loads) {
        let got = self.got;
        let s = &got.summary;
        if s.version != want.version {
            self.fail(format!("expected RDB version {}, found {}", want.version, s.version));
        }
        let len = got.bytes.len();
        let trailer = len.checked_sub(8).map(|at| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&got.bytes[at..]);
            u64::from_le_bytes(b)
        });
        let crc_ok = match (want.crc, s.checksum) {
            (Crc::Verified, Some(Checksum::Verified(x))) => Some(x) == trailer,
            (Crc::Zero, Some(Checksum::Disabled)) => true,
            (Crc::NoTrailer, Some(Checksum::Absent)) => true,
            _ => false,
        };
        if !crc_ok {
            self.fail(format!(
                "expected checksum {:?} (trailer {:#018x}), the reader reports {:?}",
                want.crc,
                trailer.unwrap_or(0),
                s.checksum
            ));
        }
        if s.bytes != len as u64 {
            self.fail(format!("the reader consumed {} of the file's {len} bytes", s.bytes));
        }
        let names: Vec<Vec<u8>> = s.aux.iter().map(|(k, _)| k.clone()).collect();
        match &want.writer {
            None => {
                if !names.is_empty() {
                    let shown: Vec<String> = names.iter().map(|n| show(n)).collect();
                    self.fail(format!("expected no AUX fields, found {}", first(&shown, 20)));
                }
            }
            Some(w) => {
                if s.aux(w.ver_field) != Some(w.redis_ver.as_bytes()) {
                    self.fail(format!(
                        "expected AUX {} {:?}, found {:?}",
                        w.ver_field,
                        w.redis_ver,
                        s.aux(w.ver_field).map(show)
                    ));
                }
                self.aux_names(w.aux, &names);
            }
        }
        let (loaded, counted, streamed) = (got.ks.len(), s.keys(), got.records.len());
        if (loaded, counted, streamed) != (want.keys, want.keys as u64, want.keys) {
            self.fail(format!(
                "expected {} keys; load_file kept {loaded}, its summary counted {counted}, \
                 the streaming reader yielded {streamed}",
                want.keys
            ));
        }
    }

    /// The AUX names of the file are exactly `want` (a pattern `*x*` matches a name containing `x`).
    fn aux_names(&mut self, want: &[&str], names: &[Vec<u8>]) {
        let mut unmatched: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let mut missing = Vec::new();
        for pattern in want {
            let hit = match pattern.strip_prefix('*').and_then(|p| p.strip_suffix('*')) {
                Some(inner) => unmatched.iter().position(|n| n.windows(inner.len()).any(|w| w == inner.as_bytes())),
                None => unmatched.iter().position(|n| *n == pattern.as_bytes()),
            };
            match hit {
                Some(i) => {
                    unmatched.remove(i);
                }
                None => missing.push(*pattern),
            }
        }
        if !missing.is_empty() || !unmatched.is_empty() {
            let extra: Vec<String> = unmatched.iter().map(|n| show(n)).collect();
            self.fail(format!(
                "AUX fields differ: missing [{}]; unexpected [{}]",
                missing.join(", "),
                extra.join(", ")
            ));
        }
    }

    /// What needs no manifest: the streaming reader and `load_file` agree key by key, and the
    /// summary's counts match what was loaded.
    fn consistency(&mut self) {
        let got = self.got;
        let (ks, s) = (&got.ks, &got.summary);
        for r in &got.records {
            match ks.get(r.db, &r.key) {
                Some(entry) if *entry == r.entry => {}
                Some(_) => self.fail(format!(
                    "key {} in db {}: the streaming reader and load_file decode it differently",
                    show(&r.key),
                    r.db
                )),
                None => self.fail(format!(
                    "key {} in db {}: the streaming reader yields it, load_file does not keep it",
                    show(&r.key),
                    r.db
                )),
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut already_expired = 0;
        for db in 0..16 {
            let keys = ks.db(db).len() as u64;
            let expires = ks.db(db).values().filter(|e| e.expire_at_ms.is_some()).count() as u64;
            already_expired += ks.db(db).values().filter(|e| e.expire_at_ms.is_some_and(|at| at <= now)).count();
            if (s.keys_per_db[db], s.expires_per_db[db]) != (keys, expires) {
                self.fail(format!(
                    "db {db}: the summary counts {} keys and {} expiries, the keyspace holds {keys} and {expires}",
                    s.keys_per_db[db], s.expires_per_db[db]
                ));
            }
        }
        if s.already_expired != already_expired as u64 {
            self.fail(format!(
                "the summary counts {} already-expired keys, the keyspace {already_expired}",
                s.already_expired
            ));
        }
        let opaque = ks.iter().filter(|(_, _, e)| matches!(e.value, Value::Opaque(_))).count() as u64;
        if s.opaque_values != opaque {
            self.fail(format!("the summary counts {} opaque values, the keyspace holds {opaque}", s.opaque_values));
        }
        if s.functions != ks.functions().len() as u64 || ks.functions() != got.functions.as_slice() {
            self.fail(format!(
                "function libraries: the summary counts {}, load_file kept {}, the streaming reader yielded {}",
                s.functions,
                ks.functions().len(),
                got.functions.len()
            ));
        }
        if s.empty_keys_skipped != got.skipped.len() as u64 {
            self.fail(format!(
                "the summary counts {} empty keys skipped, the streaming reader skipped {}",
                s.empty_keys_skipped,
                got.skipped.len()
            ));
        }
        let elements: u64 = ks
            .iter()
            .filter(|(_, _, e)| !matches!(e.value, Value::Opaque(_)))
            .map(|(_, _, e)| e.value.len() as u64)
            .sum();
        if s.elements != elements {
            self.fail(format!("the summary counts {} elements, the keyspace holds {elements}", s.elements));
        }
        match &got.checked {
            Err(e) => self.fail(format!("load_file loaded it, but rdb::check refused it: {e}")),
            Ok(c) => {
                let view = |s: &LoadSummary| {
                    (
                        s.version,
                        s.keys_per_db,
                        s.expires_per_db,
                        s.opaque_values,
                        s.elements,
                        s.functions,
                        s.empty_keys_skipped,
                        s.checksum,
                        s.bytes,
                        s.aux.clone(),
                    )
                };
                if view(c) != view(s) {
                    self.fail(format!("rdb::check summarises it as {c:?}, load_file as {s:?}"));
                }
            }
        }
    }

    /// What a content check left unsaid must be absent: function libraries, skipped empty keys
    /// and SLOT_INFO opcodes.
    fn finish(&mut self) {
        if !self.slot_info_described && !self.got.slot_info.is_empty() {
            self.fail(format!("SLOT_INFO opcodes the manifest does not list: {:?}", self.got.slot_info));
        }
        if !self.functions_described && !self.got.functions.is_empty() {
            self.fail(format!("{} function libraries the manifest does not list", self.got.functions.len()));
        }
        if !self.skipped_described && !self.got.skipped.is_empty() {
            let names: Vec<String> =
                self.got.skipped.iter().map(|(db, k, _)| format!("{} in db {db}", show(k))).collect();
            self.fail(format!("empty keys skipped that the manifest does not list: {}", first(&names, 10)));
        }
    }

    /// Start checking `key` in `db`; a missing key is a failure (naming the db it is in, if any).
    fn key(&mut self, db: usize, key: impl AsRef<[u8]>) -> KeyCheck<'_, 'a> {
        let key = key.as_ref().to_vec();
        let got = self.got;
        let entry = got.ks.get(db, &key);
        let record = self.records.get(&(db, key.clone())).copied();
        self.described.insert((db, key.clone()));
        if entry.is_none() {
            let elsewhere: Vec<usize> = (0..16).filter(|&d| got.ks.get(d, &key).is_some()).collect();
            let hint = if elsewhere.is_empty() { String::new() } else { format!(" (it is in db {elsewhere:?})") };
            self.fail(format!("expected key {} in db {db}, not found{hint}", show(&key)));
        } else if record.is_none() {
            self.fail(format!(
                "key {} in db {db}: load_file kept it, the streaming reader never yielded it",
                show(&key)
            ));
        }
        KeyCheck::new(self, db, key, entry, record)
    }

    /// The keys of `db` starting with `prefix`, sorted.
    fn keys_starting_with(&self, db: usize, prefix: impl AsRef<[u8]>) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> =
            self.got.ks.db(db).keys().filter(|k| k.starts_with(prefix.as_ref())).cloned().collect();
        keys.sort();
        keys
    }

    /// Start checking the one key of `db` that starts with `prefix` (the manifest shortens long keys).
    fn key_starting_with(&mut self, db: usize, prefix: impl AsRef<[u8]>) -> KeyCheck<'_, 'a> {
        let keys = self.keys_starting_with(db, prefix.as_ref());
        if let [key] = keys.as_slice() {
            let key = key.clone();
            return self.key(db, key);
        }
        self.fail(format!("expected one key starting with {} in db {db}, found {}", show(prefix.as_ref()), keys.len()));
        KeyCheck::new(self, db, prefix.as_ref().to_vec(), None, None)
    }

    /// Every key of the keyspace has been described by [`Check::key`]: the manifest lists them all.
    fn no_other_keys(&mut self) {
        let mut extra: Vec<String> = self
            .got
            .ks
            .iter()
            .filter(|(db, k, _)| !self.described.contains(&(*db, (*k).clone())))
            .map(|(db, k, _)| format!("{} in db {db}", show(k)))
            .collect();
        extra.sort();
        if !extra.is_empty() {
            self.fail(format!("{} keys the manifest does not list: {}", extra.len(), first(&extra, 10)));
        }
    }

    /// The keys of `db` for which `pred` holds are exactly `want` (the manifest's filter results).
    fn keys_where(&mut self, db: usize, what: &str, pred: impl Fn(&[u8], &Value) -> bool, want: &[&str]) {
        let found: Vec<&[u8]> =
            self.got.ks.db(db).iter().filter(|(k, e)| pred(k, &e.value)).map(|(k, _)| k.as_slice()).collect();
        let want: Vec<&[u8]> = want.iter().map(|w| w.as_bytes()).collect();
        if let Some(diff) = member_diff(&want, &found) {
            self.fail(format!("keys in db {db} that {what}: {diff}"));
        }
    }

    /// Database `db` holds `keys` keys, `expires` of them with an expiry.
    fn db_counts(&mut self, db: usize, keys: usize, expires: usize) {
        let d = self.got.ks.db(db);
        let found = (d.len(), d.values().filter(|e| e.expire_at_ms.is_some()).count());
        if found != (keys, expires) {
            self.fail(format!(
                "db {db}: expected {keys} keys with {expires} expiries, found {} with {}",
                found.0, found.1
            ));
        }
    }

    /// AUX field `name` holds `value`.
    fn aux(&mut self, name: &str, value: &str) {
        let found = self.got.summary.aux(name);
        if found != Some(value.as_bytes()) {
            self.fail(format!("expected AUX {name} = {}, found {:?}", show(value.as_bytes()), found.map(show)));
        }
    }

    /// The file holds `n` function libraries.
    fn functions(&mut self, n: usize) {
        self.functions_described = true;
        if self.got.ks.functions().len() != n {
            self.fail(format!("expected {n} function libraries, found {}", self.got.ks.functions().len()));
        }
    }

    /// Function library `i` starts with `prefix` and contains `body`.
    fn function(&mut self, i: usize, prefix: &str, body: &str) {
        let Some(code) = self.got.ks.functions().get(i) else { return };
        let contains = code.windows(body.len()).any(|w| w == body.as_bytes());
        if !code.starts_with(prefix.as_bytes()) || !contains {
            self.fail(format!(
                "function library {i} should start with {prefix:?} and contain {body:?}, found {}",
                show(code)
            ));
        }
    }

    /// The empty collections skipped are exactly these (db, key, RDB type name).
    fn skipped(&mut self, want: &[(usize, &str, &str)]) {
        self.skipped_described = true;
        let want: BTreeSet<(usize, Vec<u8>, u8)> =
            want.iter().map(|(db, k, t)| (*db, k.as_bytes().to_vec(), rdb_type_byte(t))).collect();
        let found: BTreeSet<(usize, Vec<u8>, u8)> = self.got.skipped.iter().cloned().collect();
        if want != found {
            let fmt = |s: &BTreeSet<(usize, Vec<u8>, u8)>| -> Vec<String> {
                s.iter().map(|(db, k, t)| format!("{} (db {db}, type {t})", show(k))).collect()
            };
            let missing: Vec<String> = fmt(&want.difference(&found).cloned().collect());
            let extra: Vec<String> = fmt(&found.difference(&want).cloned().collect());
            self.fail(format!(
                "skipped empty keys differ: missing [{}]; unexpected [{}]",
                first(&missing, 10),
                first(&extra, 10)
            ));
        }
    }

    /// The SLOT_INFO opcodes are exactly these (slot, keys, keys with an expiry), in file order.
    fn slot_info(&mut self, want: &[(u64, u64, u64)]) {
        self.slot_info_described = true;
        if self.got.slot_info != want {
            self.fail(format!("expected SLOT_INFO {want:?}, found {:?}", self.got.slot_info));
        }
    }

    /// No key's value string was stored with encoding `e`.
    fn no_string_encoded(&mut self, e: StringEncoding) {
        let hits: Vec<String> =
            self.got.records.iter().filter(|r| r.string_encoding == Some(e)).map(|r| show(&r.key)).collect();
        if !hits.is_empty() {
            self.fail(format!("expected no {} strings, found {}", e.name(), first(&hits, 10)));
        }
    }
}

/// The checks of one key. Whatever a check does not mention must be absent: a key described
/// without [`KeyCheck::expires`] must not expire, and one without [`KeyCheck::lfu`] /
/// [`KeyCheck::idle`] must carry no FREQ / IDLE opcode (checked on drop).
struct KeyCheck<'c, 'a> {
    /// The file's checks, where failures go.
    c: &'c mut Check<'a>,
    /// The database.
    db: usize,
    /// The key.
    key: Vec<u8>,
    /// What `load_file` kept, if anything.
    entry: Option<&'a Entry>,
    /// What the streaming reader yielded, if anything.
    record: Option<&'a KeyRecord>,
    /// Whether the expiry was described.
    expiry_described: bool,
    /// Whether the LFU counter was described.
    lfu_described: bool,
    /// Whether the LRU idle time was described.
    idle_described: bool,
}

impl<'c, 'a> KeyCheck<'c, 'a> {
    /// Checks of `key` in `db` against what the readers produced.
    fn new(
        c: &'c mut Check<'a>,
        db: usize,
        key: Vec<u8>,
        entry: Option<&'a Entry>,
        record: Option<&'a KeyRecord>,
    ) -> Self {
        KeyCheck { c, db, key, entry, record, expiry_described: false, lfu_described: false, idle_described: false }
    }

    /// Record a failure about this key.
    fn fail(&mut self, msg: impl Display) {
        let m = format!("key {} in db {}: {msg}", show(&self.key), self.db);
        self.c.failures.push(m);
    }

    /// The loaded value, if the key exists.
    fn value(&self) -> Option<&'a Value> {
        self.entry.map(|e| &e.value)
    }

    /// The value as a string, or a failure naming what it is instead.
    fn as_string(&mut self) -> Option<&'a [u8]> {
        match self.value()? {
            Value::String(s) => Some(s),
            other => {
                self.fail(format!("expected a string, found {}", describe(other)));
                None
            }
        }
    }

    /// The value as a list, or a failure naming what it is instead.
    fn as_list(&mut self) -> Option<&'a VecDeque<Vec<u8>>> {
        match self.value()? {
            Value::List(l) => Some(l),
            other => {
                self.fail(format!("expected a list, found {}", describe(other)));
                None
            }
        }
    }

    /// The value as a set, or a failure naming what it is instead.
    fn as_set(&mut self) -> Option<&'a HashSet<Vec<u8>>> {
        match self.value()? {
            Value::Set(s) => Some(s),
            other => {
                self.fail(format!("expected a set, found {}", describe(other)));
                None
            }
        }
    }

    /// The value as a hash, or a failure naming what it is instead.
    fn as_hash(&mut self) -> Option<&'a HashMap<Vec<u8>, Vec<u8>>> {
        match self.value()? {
            Value::Hash(h) => Some(h),
            other => {
                self.fail(format!("expected a hash, found {}", describe(other)));
                None
            }
        }
    }

    /// The value as a sorted set, or a failure naming what it is instead.
    fn as_zset(&mut self) -> Option<&'a HashMap<Vec<u8>, f64>> {
        match self.value()? {
            Value::ZSet(z) => Some(z),
            other => {
                self.fail(format!("expected a sorted set, found {}", describe(other)));
                None
            }
        }
    }

    /// The key itself is `n` bytes long.
    fn key_len(mut self, n: usize) -> Self {
        if self.entry.is_some() && self.key.len() != n {
            let len = self.key.len();
            self.fail(format!("expected the key to be {n} bytes long, it is {len}"));
        }
        self
    }

    /// It was stored with RDB value type `name` (the manifest's type names).
    fn rdb_type(mut self, name: &str) -> Self {
        let want = rdb_type_byte(name);
        if let Some(r) = self.record
            && r.rdb_type != want
        {
            let found = rdb::type_name(r.rdb_type).unwrap_or("?");
            self.fail(format!("expected RDB type {name} ({want}), found {found} ({})", r.rdb_type));
        }
        self
    }

    /// It is a string with exactly these bytes.
    fn string(mut self, want: impl AsRef<[u8]>) -> Self {
        if let Some(s) = self.as_string()
            && s != want.as_ref()
        {
            self.fail(format!("expected the string {}, found {}", show(want.as_ref()), show(s)));
        }
        self
    }

    /// It is a string starting with `prefix` (the manifest shortens long values).
    fn string_starts_with(mut self, prefix: impl AsRef<[u8]>) -> Self {
        if let Some(s) = self.as_string()
            && !s.starts_with(prefix.as_ref())
        {
            self.fail(format!("expected a string starting with {}, found {}", show(prefix.as_ref()), show(s)));
        }
        self
    }

    /// Its value string was stored with encoding `e` (raw, int8/16/32, LZF).
    fn encoded(mut self, e: StringEncoding) -> Self {
        if let Some(r) = self.record
            && r.string_encoding != Some(e)
        {
            let found = r.string_encoding.map_or("none", StringEncoding::name);
            self.fail(format!("expected a {} string encoding, found {found} ({})", e.name(), r.encoding()));
        }
        self
    }

    /// It is a list with exactly these elements, in this order.
    fn list<T: AsRef<[u8]>>(mut self, want: &[T]) -> Self {
        if let Some(l) = self.as_list() {
            if l.len() != want.len() {
                self.fail(format!("expected {} list elements, found {}", want.len(), l.len()));
            } else if let Some(i) = (0..l.len()).find(|&i| l[i].as_slice() != want[i].as_ref()) {
                self.fail(format!("list element {i}: expected {}, found {}", show(want[i].as_ref()), show(&l[i])));
            }
        }
        self
    }

    /// It is a list with these elements in some order (the source test checks membership only).
    fn list_elements_in_any_order<T: AsRef<[u8]>>(mut self, want: &[T]) -> Self {
        if let Some(l) = self.as_list() {
            let want: Vec<&[u8]> = want.iter().map(AsRef::as_ref).collect();
            let found: Vec<&[u8]> = l.iter().map(Vec::as_slice).collect();
            if let Some(diff) = member_diff(&want, &found) {
                self.fail(format!("list elements differ: {diff}"));
            }
        }
        self
    }

    /// It is a list of `n` elements.
    fn list_len(mut self, n: usize) -> Self {
        if let Some(l) = self.as_list()
            && l.len() != n
        {
            self.fail(format!("expected {n} list elements, found {}", l.len()));
        }
        self
    }

    /// It is a list containing each of `want`.
    fn list_contains<T: AsRef<[u8]>>(mut self, want: &[T]) -> Self {
        if let Some(l) = self.as_list() {
            for w in want {
                if !l.iter().any(|e| e.as_slice() == w.as_ref()) {
                    self.fail(format!("expected the list to contain {}", show(w.as_ref())));
                }
            }
        }
        self
    }

    /// It is a list whose every element is `what` (as `pred` judges).
    fn list_all(mut self, what: &str, pred: impl Fn(&[u8]) -> bool) -> Self {
        if let Some(l) = self.as_list()
            && let Some(bad) = l.iter().find(|e| !pred(e))
        {
            self.fail(format!("expected every list element to be {what}, found {}", show(bad)));
        }
        self
    }

    /// It is a set with exactly these members.
    fn set<T: AsRef<[u8]>>(mut self, want: &[T]) -> Self {
        if let Some(s) = self.as_set() {
            let want: Vec<&[u8]> = want.iter().map(AsRef::as_ref).collect();
            let found: Vec<&[u8]> = s.iter().map(Vec::as_slice).collect();
            if let Some(diff) = member_diff(&want, &found) {
                self.fail(format!("set members differ: {diff}"));
            }
        }
        self
    }

    /// It is a set of `n` members.
    fn set_len(mut self, n: usize) -> Self {
        if let Some(s) = self.as_set()
            && s.len() != n
        {
            self.fail(format!("expected {n} set members, found {}", s.len()));
        }
        self
    }

    /// It is a hash holding each of `want` (field, value), and maybe more.
    fn hash_has<F: AsRef<[u8]>, V: AsRef<[u8]>>(mut self, want: &[(F, V)]) -> Self {
        if let Some(h) = self.as_hash() {
            for (f, v) in want {
                match h.get(f.as_ref()) {
                    None => self.fail(format!("expected hash field {}, not found", show(f.as_ref()))),
                    Some(found) if found.as_slice() != v.as_ref() => self.fail(format!(
                        "hash field {}: expected {}, found {}",
                        show(f.as_ref()),
                        show(v.as_ref()),
                        show(found)
                    )),
                    Some(_) => {}
                }
            }
        }
        self
    }

    /// It is a hash with exactly these (field, value) pairs.
    fn hash<F: AsRef<[u8]>, V: AsRef<[u8]>>(self, want: &[(F, V)]) -> Self {
        let mut this = self.hash_has(want);
        if let Some(h) = this.as_hash() {
            let fields: HashSet<&[u8]> = want.iter().map(|(f, _)| f.as_ref()).collect();
            let mut extra: Vec<String> = h.keys().filter(|f| !fields.contains(f.as_slice())).map(|f| show(f)).collect();
            extra.sort();
            if !extra.is_empty() {
                this.fail(format!("{} unexpected hash fields: {}", extra.len(), first(&extra, 5)));
            }
        }
        this
    }

    /// It is a hash of `n` fields.
    fn hash_len(mut self, n: usize) -> Self {
        if let Some(h) = self.as_hash()
            && h.len() != n
        {
            self.fail(format!("expected {n} hash fields, found {}", h.len()));
        }
        self
    }

    /// It is a hash whose `field` holds a value of `n` bytes.
    fn hash_value_len(mut self, field: &str, n: usize) -> Self {
        if let Some(h) = self.as_hash() {
            match h.get(field.as_bytes()) {
                None => self.fail(format!("expected hash field {field:?}, not found")),
                Some(v) if v.len() != n => {
                    self.fail(format!("hash field {field:?}: expected {n} bytes, found {}", v.len()))
                }
                Some(_) => {}
            }
        }
        self
    }

    /// It is a sorted set holding each of `want` (member, score), and maybe more.
    fn zset_has<M: AsRef<[u8]>>(mut self, want: &[(M, f64)]) -> Self {
        if let Some(z) = self.as_zset() {
            for (m, score) in want {
                match z.get(m.as_ref()) {
                    None => self.fail(format!("expected sorted set member {}, not found", show(m.as_ref()))),
                    Some(found) if found != score => {
                        self.fail(format!("member {}: expected score {score}, found {found}", show(m.as_ref())));
                    }
                    Some(_) => {}
                }
            }
        }
        self
    }

    /// It is a sorted set with exactly these (member, score) pairs.
    fn zset<M: AsRef<[u8]>>(self, want: &[(M, f64)]) -> Self {
        let mut this = self.zset_has(want);
        if let Some(z) = this.as_zset() {
            let members: HashSet<&[u8]> = want.iter().map(|(m, _)| m.as_ref()).collect();
            let mut extra: Vec<String> =
                z.keys().filter(|m| !members.contains(m.as_slice())).map(|m| show(m)).collect();
            extra.sort();
            if !extra.is_empty() {
                this.fail(format!("{} unexpected sorted set members: {}", extra.len(), first(&extra, 5)));
            }
        }
        this
    }

    /// It is a sorted set of `n` members.
    fn zset_len(mut self, n: usize) -> Self {
        if let Some(z) = self.as_zset()
            && z.len() != n
        {
            self.fail(format!("expected {n} sorted set members, found {}", z.len()));
        }
        self
    }

    /// It is a sorted set in which some member has `score`.
    fn zset_has_score(mut self, score: f64) -> Self {
        if let Some(z) = self.as_zset()
            && !z.values().any(|s| *s == score)
        {
            self.fail(format!("expected a member with score {score}"));
        }
        self
    }

    /// Its encoding as found in the file, named in the file's dialect, is `name`.
    fn encoding(mut self, name: &str) -> Self {
        if let Some(r) = self.record
            && r.encoding() != name
        {
            self.fail(format!("expected encoding {name}, found {}", r.encoding()));
        }
        self
    }

    /// It is carried opaque with RDB type `name` (streams, hashes with field expiry).
    fn opaque(mut self, name: &str) -> Self {
        let want = rdb_type_byte(name);
        match self.value() {
            Some(Value::Opaque(o)) if o.rdb_type == want => {}
            Some(other) => self.fail(format!("expected an opaque {name} ({want}), found {}", describe(other))),
            None => {}
        }
        self.rdb_type(name)
    }

    /// It expires at `at_ms` (unix ms).
    fn expires(mut self, at_ms: i64) -> Self {
        self.expiry_described = true;
        if let Some(e) = self.entry
            && e.expire_at_ms != Some(at_ms)
        {
            self.fail(format!("expected expiry at unix ms {at_ms}, found {:?}", e.expire_at_ms));
        }
        self
    }

    /// A FREQ opcode gave it LFU counter `n`.
    fn lfu(mut self, n: u8) -> Self {
        self.lfu_described = true;
        if let Some(r) = self.record
            && r.lfu_freq != Some(n)
        {
            self.fail(format!("expected LFU counter {n}, found {:?}", r.lfu_freq));
        }
        self
    }

    /// An IDLE opcode gave it LRU idle time `s` seconds.
    fn idle(mut self, s: u64) -> Self {
        self.idle_described = true;
        if let Some(r) = self.record
            && r.lru_idle_s != Some(s)
        {
            self.fail(format!("expected LRU idle time {s} s, found {:?}", r.lru_idle_s));
        }
        self
    }
}

impl Drop for KeyCheck<'_, '_> {
    /// What the check did not describe must be absent: an expiry, a FREQ or an IDLE opcode.
    fn drop(&mut self) {
        if let Some(e) = self.entry
            && !self.expiry_described
            && let Some(at) = e.expire_at_ms
        {
            self.fail(format!("has an expiry (unix ms {at}) the manifest does not list"));
        }
        if let Some(r) = self.record {
            if !self.lfu_described && r.lfu_freq.is_some() {
                self.fail(format!("has an LFU counter {:?} the manifest does not list", r.lfu_freq));
            }
            if !self.idle_described && r.lru_idle_s.is_some() {
                self.fail(format!("has an LRU idle time {:?} the manifest does not list", r.lru_idle_s));
            }
        }
    }
}
