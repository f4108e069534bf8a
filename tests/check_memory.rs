//! Checking streams: `snaplab verify` and `snaplab inspect` on a dump whose 227 KB describe a
//! list of ten million elements peak under 64 MiB resident plus the 20 MB listpack they must
//! decompress. Before, `verify` built the whole list: 790 MiB.
//!
//! The peak is the children's `ru_maxrss` (getrusage(RUSAGE_CHILDREN)). On Linux a child
//! started with vfork, as `std::process::Command` starts it, also records the peak of the
//! process that spawned it when it execs, so this test lives in its own binary and writes the
//! LZF stream by hand instead of compressing a 20 MB listpack: the test process stays at a few
//! MiB and the figure is the child's own.

use std::process::{Command, Stdio};

use snaplab_core::rdb;
use snaplab_core::rdb::encode::put_len;

/// LZF data (liblzf src/lzf_d.c, the format Redis's `rdbLoadLzfStringObject` expands) whose
/// expansion is `head`, then `repeat` more bytes repeating the last two bytes of `head`, then
/// `tail`. A control byte below 32 starts a literal run of that many plus one bytes; a larger
/// one is a back reference: its top 3 bits are the copy length minus 2 (7: add the next byte),
/// its low 5 bits and the following byte the distance minus 1. Distance 2 copies the pair
/// over and over, at most 264 bytes per 3-byte reference.
fn lzf_repeating(head: &[u8], mut repeat: usize, tail: &[u8]) -> Vec<u8> {
    assert!((2..=32).contains(&head.len()) && !tail.is_empty() && tail.len() <= 32);
    let mut out = vec![head.len() as u8 - 1];
    out.extend_from_slice(head);
    while repeat > 0 {
        // Every reference copies at least 3 bytes; keep the remainder 0 or at least 3.
        let mut n = repeat.min(264);
        if (1..3).contains(&(repeat - n)) {
            n -= 3;
        }
        if n >= 9 {
            out.extend_from_slice(&[0xE0, (n - 9) as u8, 1]);
        } else {
            out.extend_from_slice(&[((n - 2) << 5) as u8, 1]);
        }
        repeat -= n;
    }
    out.push(tail.len() as u8 - 1);
    out.extend_from_slice(tail);
    out
}

/// The dump: a list (RDB_TYPE_LIST_QUICKLIST_2, Redis src/rdb.c) of one packed node
/// (container 2, src/quicklist.h) whose listpack (src/listpack.c: total bytes u32 LE, count
/// u16 LE with 65535 for "too many to count", entries, 0xFF) holds `n` entries `0x01 0x01`
/// (the 7-bit integer 1 and its one-byte back-length), stored LZF-compressed. Returns the dump
/// and the listpack's size.
fn list_of_ones(n: usize) -> (Vec<u8>, usize) {
    let lp_len = 6 + 2 * n + 1;
    let mut head = (lp_len as u32).to_le_bytes().to_vec();
    head.extend_from_slice(&[0xFF, 0xFF, 0x01, 0x01]);
    let lzf = lzf_repeating(&head, 2 * (n - 1), &[0xFF]);
    let mut d = b"REDIS0010".to_vec();
    d.extend_from_slice(&[0xFE, 0x00, 18, 1, b'k']); // SELECTDB 0; type 18, key "k"
    put_len(&mut d, 1); // one node
    put_len(&mut d, 2); // QUICKLIST_NODE_CONTAINER_PACKED
    d.push(0xC3); // an LZF string: compressed length, expanded length, data
    put_len(&mut d, lzf.len() as u64);
    put_len(&mut d, lp_len as u64);
    d.extend_from_slice(&lzf);
    d.push(0xFF);
    let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&d);
    d.extend_from_slice(&crc.to_le_bytes());
    (d, lp_len)
}

/// The largest peak resident set of any child this process has waited for, in bytes
/// (ru_maxrss is in KiB on Linux).
fn children_peak_rss() -> u64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    usage.max_rss() as u64 * 1024
}

/// `snaplab verify`, `inspect` and `inspect --json` on the 227 KB dump (a list of
/// 10,000,000 one-byte integers in one LZF-compressed listpack) stay under 64 MiB resident
/// plus the 20 MB listpack: checking streams element by element instead of building the list.
#[test]
fn checking_a_huge_compressed_list_streams() {
    let (dump, blob) = list_of_ones(10_000_000);
    eprintln!("the dump is {} bytes; its listpack {blob} bytes", dump.len());
    assert!(dump.len() < 300_000, "LZF shrinks the 20 MB listpack about 88 times");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ten_million.rdb");
    std::fs::write(&path, &dump).unwrap();
    drop(dump);
    let bound = 64 * 1024 * 1024 + blob as u64;
    let file = path.to_str().unwrap();
    for args in [vec!["verify", file], vec!["inspect", file], vec!["inspect", "--json", file]] {
        let status = Command::new(env!("CARGO_BIN_EXE_snaplab"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("the snaplab binary runs");
        assert!(status.success(), "snaplab {args:?} refused a valid dump");
        let peak = children_peak_rss();
        eprintln!("snaplab {args:?}: peak resident {:.1} MiB so far", peak as f64 / 1048576.0);
        assert!(
            peak <= bound,
            "snaplab {args:?} peaked at {:.1} MiB resident, over 64 MiB + the {:.1} MiB listpack",
            peak as f64 / 1048576.0,
            blob as f64 / 1048576.0
        );
    }
    // The dump is what it claims: ten million elements, counted while streaming.
    let summary = rdb::check(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!((summary.keys(), summary.elements), (1, 10_000_000));
}
