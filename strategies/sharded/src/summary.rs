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
//!
//! A summary is input like any dump: it may come from anywhere. So a shard name is accepted
//! only if it is exactly the name this naming scheme gives shard `i` of the summary's
//! snapshot, beside the summary; an absolute path, a `../`, or any other file is refused
//! ([`LoadError::ForeignShardName`]), by [`load`] and [`read`] alike, and [`commit`] never
//! removes a file that the previous summary names unless it passes the same check. Every
//! file operation of a save (reading the previous summary, writing the new one, removing
//! shard files) goes through the save's [`SaveIo`], so fault injection covers them.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use snaplab_core::rdb::{self, EncodeOptions, RdbError, RdbWriter, encode::write_aux_fields};
use snaplab_core::{AtomicFile, Bytes, Keyspace, RealIo, SaveError, SaveIo, escape};

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
    /// The summary's snapshot id is not what [`new_snapshot_id`] makes (16 lowercase hex
    /// digits), so no shard file name can be built from it safely.
    #[error("{}: snapshot id \"{id}\" is not 16 hex digits", path.display())]
    BadSnapshotId {
        /// The summary.
        path: PathBuf,
        /// The id it holds (escaped).
        id: String,
    },
    /// The summary names a file that this snapshot's naming scheme did not make: an
    /// absolute path, a path into another directory, or any name other than
    /// `<summary name>.<id>.shard-<i>.rdb`. Refused, so that a summary can neither make a
    /// save delete nor a load read an arbitrary file.
    #[error("{}: shard {shard} is named \"{name}\", but it can only be \"{expected}\" beside the summary", path.display())]
    ForeignShardName {
        /// The summary.
        path: PathBuf,
        /// The shard number.
        shard: usize,
        /// The name it gives (escaped).
        name: String,
        /// The only name the naming scheme gives that shard.
        expected: String,
    },
}

/// A fresh snapshot id: 64 random bits, as hex.
pub fn new_snapshot_id() -> String {
    // RandomState is seeded from the OS's randomness: enough for an id, without a new crate.
    format!("{:016x}", RandomState::new().hash_one(snaplab_core::unix_ms_now()))
}

/// Where shard `i` of snapshot `id` goes, next to the summary at `dest`.
pub fn shard_path(dest: &Path, id: &str, i: usize) -> PathBuf {
    dest.with_file_name(shard_file_name(dest, id, i))
}

/// The naming scheme: `<summary name>.<id>.shard-<i>.rdb` (`dump.rdb.<id>.shard-<i>.rdb`
/// when `dest` has no file name).
fn shard_file_name(dest: &Path, id: &str, i: usize) -> String {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "dump.rdb".into());
    format!("{name}.{id}.shard-{i}.rdb")
}

/// Whether `id` is what [`new_snapshot_id`] makes: 16 lowercase hex digits, nothing that
/// could add a directory to a file name.
fn is_snapshot_id(id: &[u8]) -> bool {
    id.len() == 16 && id.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

fn aux_of(path: &Path, io: &dyn SaveIo) -> Result<Vec<(Bytes, Bytes)>, LoadError> {
    let f = io
        .open(path)
        .map_err(|e| LoadError::Rdb { path: path.to_path_buf(), source: RdbError::Io { offset: 0, source: e } })?;
    let summary = rdb::scan(f, |_| {}).map_err(|source| LoadError::Rdb { path: path.to_path_buf(), source })?;
    Ok(summary.aux)
}

fn field<'a>(aux: &'a [(Bytes, Bytes)], name: &str, path: &Path) -> Result<&'a [u8], LoadError> {
    aux.iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
        .ok_or_else(|| LoadError::Inconsistent { path: path.to_path_buf(), reason: format!("no AUX field {name}") })
}

/// The shard files a summary names, in shard order, and its snapshot id, reading the real
/// file system.
///
/// # Errors
/// [`LoadError`] when `summary` is not a sharded snapshot's summary, or names a file its
/// naming scheme did not make ([`LoadError::ForeignShardName`], [`LoadError::BadSnapshotId`]).
pub fn read(summary: &Path) -> Result<(String, Vec<PathBuf>), LoadError> {
    read_with(summary, &RealIo)
}

/// [`read`] through `io`.
///
/// # Errors
/// As [`read`]; an I/O error opening the summary is [`LoadError::Rdb`].
pub fn read_with(summary: &Path, io: &dyn SaveIo) -> Result<(String, Vec<PathBuf>), LoadError> {
    let aux = aux_of(summary, io)?;
    let id = field(&aux, "snaplab-snapshot-id", summary)?;
    if !is_snapshot_id(id) {
        return Err(LoadError::BadSnapshotId { path: summary.to_path_buf(), id: escape(id) });
    }
    // Checked above: ASCII hex digits.
    let id = String::from_utf8_lossy(id).into_owned();
    let inconsistent = |reason: &str| LoadError::Inconsistent { path: summary.to_path_buf(), reason: reason.into() };
    let n: usize = std::str::from_utf8(field(&aux, "snaplab-shards", summary)?)
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| inconsistent("snaplab-shards is not a number"))?;
    // Each shard has its own AUX field, so a count above the number of fields is a lie.
    if n > aux.len() {
        return Err(inconsistent("snaplab-shards counts more shards than the summary names"));
    }
    let files = (0..n)
        .map(|i| {
            let name = field(&aux, &format!("snaplab-shard-{i}"), summary)?;
            let expected = shard_file_name(summary, &id, i);
            // Only the exact name the writer gives this shard: no separator, no `..`, no
            // other file of the directory.
            if name != expected.as_bytes() {
                return Err(LoadError::ForeignShardName {
                    path: summary.to_path_buf(),
                    shard: i,
                    name: escape(name),
                    expected,
                });
            }
            Ok(summary.with_file_name(expected))
        })
        .collect::<Result<_, _>>()?;
    Ok((id, files))
}

/// Write the summary for snapshot `id` at `dest` (atomically, last), then remove the
/// shard files of the snapshot it replaces. Every file operation goes through `io`.
///
/// Only files the previous summary names by this naming scheme are removed; a destination
/// that is not a summary, or names other files, has nothing to remove.
///
/// # Errors
/// [`SaveError`] if the summary cannot be written; the new shard files are then removed
/// and the previous snapshot stays complete. A failure of the directory fsync comes after
/// the rename: the new snapshot is then in place, so its shard files stay and the previous
/// ones go.
pub fn commit(dest: &Path, id: &str, shards: &[PathBuf], io: &Arc<dyn SaveIo>) -> Result<(), SaveError> {
    // A summary we cannot read, or whose names we refuse, gives nothing to remove: leaving
    // an old file behind is harmless, deleting the wrong one is not.
    let previous = read_with(dest, io.as_ref()).map(|(_, files)| files).unwrap_or_default();
    let written = (|| {
        let mut file = AtomicFile::create_with(dest, Arc::clone(io))?;
        let err = |e| SaveError::io("write", dest, e);
        let mut w = RdbWriter::new(&mut file, false).map_err(err)?;
        write_aux_fields(
            &mut w,
            &EncodeOptions {
                strategy: Some("sharded"),
                ctime_s: snaplab_core::unix_ms_now() / 1000,
                ..EncodeOptions::default()
            },
        )
        .map_err(err)?;
        w.aux(b"snaplab-snapshot-id", id.as_bytes()).map_err(err)?;
        w.aux(b"snaplab-shards", shards.len().to_string().as_bytes()).map_err(err)?;
        for (i, s) in shards.iter().enumerate() {
            let name = s.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            w.aux(format!("snaplab-shard-{i}").as_bytes(), name.as_bytes()).map_err(err)?;
        }
        w.finish().map_err(err)?;
        file.commit()
    })();
    // AtomicFile::commit fails at "fsync directory" only after its rename: the new summary
    // is then the one at `dest`, and the snapshot it names must stay whole.
    let in_place = matches!(&written, Ok(()) | Err(SaveError::Io { stage: "fsync directory", .. }));
    // Best effort: a leftover file is harmless, no summary names it.
    if in_place {
        previous.iter().filter(|f| !shards.contains(f)).for_each(|f| drop(io.remove(f)));
    } else {
        shards.iter().for_each(|f| drop(io.remove(f)));
    }
    written
}

/// Load a per-shard snapshot through its summary: every shard file in parallel, each
/// checked to belong to the summary's snapshot (same id, its own shard number). Only files
/// the naming scheme makes, beside the summary, are opened (see [`read`]).
///
/// # Errors
/// [`LoadError`] for an unreadable file, a name the naming scheme did not make, a file
/// from another snapshot, or a key that appears in two shards.
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
                    let theirs = escape(field(&summary.aux, "snaplab-snapshot-id", path)?);
                    let shard = escape(field(&summary.aux, "snaplab-shard", path)?);
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
