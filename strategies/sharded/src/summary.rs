//! The per-shard output mode: one RDB file per shard, plus a summary, all tagged with one
//! snapshot id.
//!
//! Each shard's traversal feeds its own file, so there is no central sink and the files
//! can be written (and later loaded) in parallel; this is how Dragonfly snapshots for
//! replication. Every shard file is a complete RDB dump on its own (`redis-server` loads
//! any one of them) and carries AUX fields `snaplab-snapshot-id` and `snaplab-shard`
//! (`i/N`).
//!
//! The summary is written at the destination path, last, and is itself a valid RDB file
//! with no keys: its AUX fields name the snapshot id, the shard count and each shard's
//! file. Shard files are named after the snapshot id (`dump.rdb.<id>.shard-<i>.rdb`), so a
//! new snapshot never overwrites the files the current summary points to: until the new
//! summary is renamed into place, the previous snapshot is complete; after, the previous
//! shard files are removed.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::thread;

use snaplab_core::rdb::{self, EncodeOptions, RdbError, RdbWriter, encode::write_aux_fields};
use snaplab_core::{AtomicFile, Keyspace, SaveError, escape};

/// Why a per-shard snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file is not a readable dump.
    #[error("{}: {source}", path.display())]
    Rdb {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        #[source]
        source: RdbError,
    },
    /// The summary lacks a field, or a shard file is not part of the summary's snapshot.
    #[error("{}: {reason}", path.display())]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
}

/// A fresh snapshot id: 64 random bits, as hex.
pub fn new_snapshot_id() -> String {
    // RandomState is seeded from the OS's randomness: enough for an id, without a new crate.
    format!("{:016x}", RandomState::new().hash_one(snaplab_core::unix_ms_now()))
}

/// Where shard `i` of snapshot `id` goes, next to the summary at `dest`.
pub fn shard_path(dest: &Path, id: &str, i: usize) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "dump.rdb".into());
    dest.with_file_name(format!("{name}.{id}.shard-{i}.rdb"))
}

fn aux_of(path: &Path) -> Result<Vec<(String, String)>, LoadError> {
    let f = std::fs::File::open(path)
        .map_err(|e| LoadError::Rdb { path: path.to_path_buf(), source: RdbError::Io { offset: 0, source: e } })?;
    let summary = rdb::scan(f, |_| {}).map_err(|source| LoadError::Rdb { path: path.to_path_buf(), source })?;
    Ok(summary.aux.iter().map(|(k, v)| (escape(k), escape(v))).collect())
}

fn field<'a>(aux: &'a [(String, String)], name: &str, path: &Path) -> Result<&'a str, LoadError> {
    aux.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| LoadError::Inconsistent { path: path.to_path_buf(), reason: format!("no AUX field {name}") })
}

/// The shard files a summary names, in shard order, and its snapshot id.
///
/// # Errors
/// [`LoadError`] when `summary` is not a sharded snapshot's summary.
pub fn read(summary: &Path) -> Result<(String, Vec<PathBuf>), LoadError> {
    let aux = aux_of(summary)?;
    let id = field(&aux, "snaplab-snapshot-id", summary)?.to_string();
    let n: usize = field(&aux, "snaplab-shards", summary)?.parse().map_err(|_| LoadError::Inconsistent {
        path: summary.to_path_buf(),
        reason: "snaplab-shards is not a number".into(),
    })?;
    let files = (0..n)
        .map(|i| field(&aux, &format!("snaplab-shard-{i}"), summary).map(|f| summary.with_file_name(f)))
        .collect::<Result<_, _>>()?;
    Ok((id, files))
}

/// Write the summary for snapshot `id` at `dest` (atomically, last), then remove the
/// shard files of the snapshot it replaces.
///
/// # Errors
/// [`SaveError`] if the summary cannot be written; the new shard files are then removed
/// and the previous snapshot stays complete.
pub fn commit(dest: &Path, id: &str, shards: &[PathBuf]) -> Result<(), SaveError> {
    let previous = read(dest).map(|(_, files)| files).unwrap_or_default();
    let written = (|| {
        let mut file = AtomicFile::create(dest)?;
        let io = |e| SaveError::io("write", dest, e);
        let mut w = RdbWriter::new(&mut file, false).map_err(io)?;
        write_aux_fields(
            &mut w,
            &EncodeOptions {
                strategy: Some("sharded"),
                ctime_s: snaplab_core::unix_ms_now() / 1000,
                ..EncodeOptions::default()
            },
        )
        .map_err(io)?;
        w.aux(b"snaplab-snapshot-id", id.as_bytes()).map_err(io)?;
        w.aux(b"snaplab-shards", shards.len().to_string().as_bytes()).map_err(io)?;
        for (i, s) in shards.iter().enumerate() {
            let name = s.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            w.aux(format!("snaplab-shard-{i}").as_bytes(), name.as_bytes()).map_err(io)?;
        }
        w.finish().map_err(io)?;
        file.commit()
    })();
    // Best effort: a leftover file is harmless, no summary names it.
    match &written {
        Ok(()) => previous.iter().filter(|f| !shards.contains(f)).for_each(|f| drop(std::fs::remove_file(f))),
        Err(_) => shards.iter().for_each(|f| drop(std::fs::remove_file(f))),
    }
    written
}

/// Load a per-shard snapshot through its summary: every shard file in parallel, each
/// checked to belong to the summary's snapshot (same id, its own shard number).
///
/// # Errors
/// [`LoadError`] for an unreadable file, a file from another snapshot, or a key that
/// appears in two shards.
pub fn load(summary: &Path) -> Result<Keyspace, LoadError> {
    let (id, files) = read(summary)?;
    let n = files.len();
    let loaded: Vec<Result<Keyspace, LoadError>> = thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, path)| {
                let id = id.as_str();
                scope.spawn(move || -> Result<Keyspace, LoadError> {
                    let (ks, summary) =
                        rdb::load_file(path).map_err(|source| LoadError::Rdb { path: path.clone(), source })?;
                    let aux: Vec<(String, String)> = summary.aux.iter().map(|(k, v)| (escape(k), escape(v))).collect();
                    let theirs = field(&aux, "snaplab-snapshot-id", path)?;
                    let shard = field(&aux, "snaplab-shard", path)?;
                    if theirs != id || shard != format!("{i}/{n}") {
                        return Err(LoadError::Inconsistent {
                            path: path.clone(),
                            reason: format!(
                                "it is shard {shard} of snapshot {theirs}, the summary expects shard {i}/{n} of {id}"
                            ),
                        });
                    }
                    Ok(ks)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LoadError::Inconsistent {
                        path: summary.to_path_buf(),
                        reason: "a loader thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut all = Keyspace::new();
    for (path, ks) in files.iter().zip(loaded) {
        let mut ks = ks?;
        for code in ks.functions().to_vec() {
            all.add_function(code);
        }
        for db in 0..snaplab_core::DB_COUNT {
            for (k, e) in ks.db_mut(db).drain() {
                if all.get(db, &k).is_some() {
                    return Err(LoadError::Inconsistent {
                        path: path.clone(),
                        reason: format!("key {} is in two shards", escape(&k)),
                    });
                }
                all.insert(db, k, e);
            }
        }
    }
    Ok(all)
}
