//! RDB opcodes, value types and encodings, named as in Redis src/rdb.h.
//!
//! Two writers define the format today. Redis numbers its versions 1 to 13 (Redis 8.6 writes
//! 13) after the magic `REDIS`; Valkey 9.0 writes the magic `VALKEY` and version 80, and from
//! value type 22 and opcode 243 on gives the same numbers other meanings (Valkey src/rdb.h:
//! "RDB 12-79 are reserved for Redis non-compatible RDB formats"). [`type_name_in`] names a
//! type byte in either [`Dialect`].

/// The version this crate writes in the header (`REDIS0010`): what Redis 7.0 writes and
/// what every Redis from 7.0 on loads. The plain types we write load in Redis 5 and 6 too.
pub const WRITE_VERSION: u32 = 10;
/// The newest Redis version the reader understands: Redis 7.4 to 8.4 write 12, Redis 8.6
/// writes 13 (Redis 8.6.3 src/rdb.h, `RDB_VERSION`).
pub const MAX_READ_VERSION: u32 = 13;
/// The one Valkey version the reader understands: what Valkey 9.0 writes after the magic
/// `VALKEY` (Valkey src/rdb.h, `RDB_VERSION_MAP`: {80, 9.0}). Valkey 7.2 to 8.1 write
/// `REDIS0011`, an ordinary Redis dump.
pub const VALKEY_READ_VERSION: u32 = 80;

/// Which writer's numbering a dump uses, told by its magic (`REDIS` or `VALKEY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// `REDIS` and a 4-digit version: Redis, and Valkey before 9.0.
    #[default]
    Redis,
    /// `VALKEY` and a 3-digit version: Valkey 9.0 and later.
    Valkey,
}

/// Opcode (Redis 8.6, RDB 13): module metadata of the next key, then its type byte (Redis
/// 8.6.3 src/rdb.c, `rdbResolveKeyType`; src/keymeta.c, `rdbLoadKeyMetadata`): a length (the
/// number of classes, at most 7), then per class a 32-bit little-endian class spec and a
/// module value ending with the module EOF opcode.
pub const OPCODE_KEY_META: u8 = 243;
/// Opcode (Valkey 9.0, same byte as [`OPCODE_KEY_META`]): an atomic slot migration being
/// imported (Valkey src/cluster_migrateslots.c, `clusterRDBLoadSlotImport`): the job name (a
/// string), a length N, then N pairs of lengths (first and last slot).
pub const OPCODE_SLOT_IMPORT: u8 = 243;
/// Opcode: cluster slot info (slot id, slot size, expires slot size), RDB 12.
pub const OPCODE_SLOT_INFO: u8 = 244;
/// Opcode: a function library (its source as one string), Redis 7.0 GA and later.
pub const OPCODE_FUNCTION2: u8 = 245;
/// Opcode: a function library in the format of the Redis 7.0 release candidates, which Redis
/// 7.0.x still loads (7.2 dropped it): the library name, the engine name, a length that is
/// non-zero when a description string follows, then the code (Redis 7.0.15 src/rdb.c,
/// `rdbFunctionLoad`).
pub const OPCODE_FUNCTION_PRE_GA: u8 = 246;
/// Opcode: module auxiliary data.
pub const OPCODE_MODULE_AUX: u8 = 247;
/// Opcode: LRU idle time in seconds (length-encoded) of the next key.
pub const OPCODE_IDLE: u8 = 248;
/// Opcode: LFU frequency (one byte) of the next key.
pub const OPCODE_FREQ: u8 = 249;
/// Opcode: an AUX field, two strings.
pub const OPCODE_AUX: u8 = 250;
/// Opcode: database size hints, two lengths.
pub const OPCODE_RESIZEDB: u8 = 251;
/// Opcode: expiry of the next key in ms, 8 bytes little-endian.
pub const OPCODE_EXPIRETIME_MS: u8 = 252;
/// Opcode: expiry of the next key in seconds, 4 bytes little-endian (old dumps).
pub const OPCODE_EXPIRETIME: u8 = 253;
/// Opcode: the database of the following keys, a length.
pub const OPCODE_SELECTDB: u8 = 254;
/// Opcode: end of the dump; the 8-byte CRC-64 follows from RDB 5 on.
pub const OPCODE_EOF: u8 = 255;

/// Value type: string.
pub const TYPE_STRING: u8 = 0;
/// Value type: list as a plain sequence of strings.
pub const TYPE_LIST: u8 = 1;
/// Value type: set as a plain sequence of strings.
pub const TYPE_SET: u8 = 2;
/// Value type: sorted set with scores as decimal strings (old dumps).
pub const TYPE_ZSET: u8 = 3;
/// Value type: hash as field/value string pairs.
pub const TYPE_HASH: u8 = 4;
/// Value type: sorted set with binary (8-byte little-endian IEEE 754) scores.
pub const TYPE_ZSET_2: u8 = 5;
/// Value type: module value of the 4.0 release candidates.
pub const TYPE_MODULE_PRE_GA: u8 = 6;
/// Value type: module value.
pub const TYPE_MODULE_2: u8 = 7;
/// Value type: hash as a zipmap blob (Redis 2.x).
pub const TYPE_HASH_ZIPMAP: u8 = 9;
/// Value type: list as a ziplist blob.
pub const TYPE_LIST_ZIPLIST: u8 = 10;
/// Value type: set of integers as an intset blob.
pub const TYPE_SET_INTSET: u8 = 11;
/// Value type: sorted set as a ziplist blob.
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
/// Value type: hash as a ziplist blob.
pub const TYPE_HASH_ZIPLIST: u8 = 13;
/// Value type: list as a quicklist of ziplist blobs.
pub const TYPE_LIST_QUICKLIST: u8 = 14;
/// Value type: stream (Redis 5).
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
/// Value type: hash as a listpack blob.
pub const TYPE_HASH_LISTPACK: u8 = 16;
/// Value type: sorted set as a listpack blob.
pub const TYPE_ZSET_LISTPACK: u8 = 17;
/// Value type: list as a quicklist of listpack or plain nodes (Redis 7).
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
/// Value type: stream with consumer-group offsets (Redis 7.0).
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
/// Value type: set as a listpack blob (Redis 7.2).
pub const TYPE_SET_LISTPACK: u8 = 20;
/// Value type: stream with consumer active time (Redis 7.2).
pub const TYPE_STREAM_LISTPACKS_3: u8 = 21;
/// Value type: hash with field expiry, absolute TTLs (Redis 7.4 release candidates).
pub const TYPE_HASH_METADATA_PRE_GA: u8 = 22;
/// Value type: listpack hash with field expiry (Redis 7.4 release candidates).
pub const TYPE_HASH_LISTPACK_EX_PRE_GA: u8 = 23;
/// Value type: hash with field expiry, TTLs relative to a minimum (Redis 7.4).
pub const TYPE_HASH_METADATA: u8 = 24;
/// Value type: listpack hash with field expiry (Redis 7.4).
pub const TYPE_HASH_LISTPACK_EX: u8 = 25;
/// Value type: stream with idempotent-producer (IDMP) state (Redis 8.6, RDB 13): a type-21
/// stream followed by the IDMP duration, the IDMP maximum entries, the producers (each an
/// id, a count and that many IID strings with a stream ID as two lengths), and two all-time
/// counters (Redis 8.6.3 src/rdb.c, `rdbLoadObject` and `rdbLoadStreamIdmpEntries`).
pub const TYPE_STREAM_LISTPACKS_4: u8 = 26;
/// Value type (Valkey 9.0, same byte as [`TYPE_HASH_METADATA_PRE_GA`]): a hash whose fields
/// may expire (Valkey src/rdb.c, `rdbLoadObject`): a length N, then N times a field, a value
/// and an 8-byte little-endian expiry in unix ms (-1 for none).
pub const VALKEY_TYPE_HASH_2: u8 = 22;

/// Length encoding, top two bits of the first byte: 6-bit length (Redis `RDB_6BITLEN`).
pub const LEN_6BIT: u8 = 0;
/// 14-bit length, big-endian over two bytes (`RDB_14BITLEN`).
pub const LEN_14BIT: u8 = 1;
/// Marker byte: a 32-bit big-endian length follows (`RDB_32BITLEN`).
pub const LEN_32BIT: u8 = 0x80;
/// Marker byte: a 64-bit big-endian length follows (`RDB_64BITLEN`).
pub const LEN_64BIT: u8 = 0x81;
/// Top two bits `11`: a special string encoding follows (`RDB_ENCVAL`).
pub const LEN_ENCVAL: u8 = 3;

/// Special string encoding: 8-bit signed integer.
pub const ENC_INT8: u8 = 0;
/// Special string encoding: 16-bit signed little-endian integer.
pub const ENC_INT16: u8 = 1;
/// Special string encoding: 32-bit signed little-endian integer.
pub const ENC_INT32: u8 = 2;
/// Special string encoding: LZF-compressed (compressed length, plain length, data).
pub const ENC_LZF: u8 = 3;

/// Redis's default `zset-max-listpack-entries`: a sorted set this small is held as a
/// listpack after loading (src/config.c).
pub const ZSET_MAX_LISTPACK_ENTRIES: usize = 128;
/// Redis's default `zset-max-listpack-value`: the longest member a listpack sorted set holds.
pub const ZSET_MAX_LISTPACK_VALUE: usize = 64;

/// Module value opcodes (Redis src/rdb.h `RDB_MODULE_OPCODE_*`), used when skipping.
pub const MODULE_OPCODE_EOF: u64 = 0;
/// Module opcode: signed integer (a length).
pub const MODULE_OPCODE_SINT: u64 = 1;
/// Module opcode: unsigned integer (a length).
pub const MODULE_OPCODE_UINT: u64 = 2;
/// Module opcode: a 4-byte binary float.
pub const MODULE_OPCODE_FLOAT: u64 = 3;
/// Module opcode: an 8-byte binary double.
pub const MODULE_OPCODE_DOUBLE: u64 = 4;
/// Module opcode: a string.
pub const MODULE_OPCODE_STRING: u64 = 5;

/// The name of value type `t` in a dump of `dialect`: [`type_name`] for Redis, and for
/// Valkey the types it shares with Redis (0 to 21) plus `hash_2` (22); `None` for a byte that
/// is not a value type there.
pub fn type_name_in(dialect: Dialect, t: u8) -> Option<&'static str> {
    match dialect {
        Dialect::Redis => type_name(t),
        Dialect::Valkey if t == VALKEY_TYPE_HASH_2 => Some("hash_2"),
        Dialect::Valkey if t < VALKEY_TYPE_HASH_2 => type_name(t),
        Dialect::Valkey => None,
    }
}

/// The name Redis tools use for an RDB value type (as in `redis-check-rdb` and the corpus
/// manifest), or `None` for a byte that is not a value type.
pub fn type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        TYPE_STRING => "string",
        TYPE_LIST => "list",
        TYPE_SET => "set",
        TYPE_ZSET => "zset",
        TYPE_HASH => "hash",
        TYPE_ZSET_2 => "zset_2",
        TYPE_MODULE_PRE_GA => "module_pre_ga",
        TYPE_MODULE_2 => "module_2",
        TYPE_HASH_ZIPMAP => "hash_zipmap",
        TYPE_LIST_ZIPLIST => "list_ziplist",
        TYPE_SET_INTSET => "set_intset",
        TYPE_ZSET_ZIPLIST => "zset_ziplist",
        TYPE_HASH_ZIPLIST => "hash_ziplist",
        TYPE_LIST_QUICKLIST => "list_quicklist",
        TYPE_STREAM_LISTPACKS => "stream_listpacks",
        TYPE_HASH_LISTPACK => "hash_listpack",
        TYPE_ZSET_LISTPACK => "zset_listpack",
        TYPE_LIST_QUICKLIST_2 => "list_quicklist_2",
        TYPE_STREAM_LISTPACKS_2 => "stream_listpacks_2",
        TYPE_SET_LISTPACK => "set_listpack",
        TYPE_STREAM_LISTPACKS_3 => "stream_listpacks_3",
        TYPE_HASH_METADATA_PRE_GA => "hash_metadata_pre_ga",
        TYPE_HASH_LISTPACK_EX_PRE_GA => "hash_listpack_ex_pre_ga",
        TYPE_HASH_METADATA => "hash_metadata",
        TYPE_HASH_LISTPACK_EX => "hash_listpack_ex",
        TYPE_STREAM_LISTPACKS_4 => "stream_listpacks_4",
        _ => return None,
    })
}

/// A quicklist node's container holding a listpack (Redis src/quicklist.h,
/// `QUICKLIST_NODE_CONTAINER_PACKED`), as saved before each node of a `LIST_QUICKLIST_2`.
pub const QUICKLIST_NODE_PACKED: u64 = 2;
