//! Every tar-slip and bomb case, each with its own archive built here, each checking that
//! nothing was written outside and nothing partial was left.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::digest::Digest;

/// A tar entry with its name written raw into the header, as an attacker would (the
/// `tar` crate's own setters refuse `..` and absolute names).
fn entry(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, data: &[u8], link: Option<&[u8]>) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name);
    if let Some(l) = link {
        old.linkname[..l.len()].copy_from_slice(l);
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    entry(b, name.as_bytes(), tar::EntryType::Regular, data, None);
}

fn finish(b: tar::Builder<Vec<u8>>) -> Vec<u8> {
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

/// A scratch area: `out/` (the output folder), `out/.partial/` (the resume folder) and
/// `outside/` (must stay empty).
struct Scene {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("out/.partial")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        Scene { _tmp: tmp, root }
    }
    fn out(&self) -> PathBuf {
        self.root.join("out")
    }
    fn staging(&self) -> PathBuf {
        self.root.join("out/.partial/layer.unpack")
    }
    fn run(&self, blob: &[u8], compression: Compression, limits: &Limits) -> Result<Unpacked> {
        let desc = Descriptor::new("application/vnd.cncf.model.weight.v1.tar", Digest::of(blob), blob.len() as u64);
        self.run_desc(blob, &desc, compression, limits)
    }
    fn run_desc(&self, blob: &[u8], desc: &Descriptor, compression: Compression, limits: &Limits) -> Result<Unpacked> {
        let layer = Layer { desc, compression, label: "test" };
        unpack(blob, &layer, limits, None, &self.staging(), &self.out())
    }
    /// Every path below the scene, except the resume folder itself.
    fn tree(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                if e.file_type().unwrap().is_dir() {
                    walk(&p, base, out);
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.root, &self.root, &mut v);
        v.retain(|p| p != "out" && p != "outside" && p != "out/.partial");
        v.sort();
        v
    }
    /// Refused, and left nothing at all behind: not in the output folder, not outside,
    /// no staging folder.
    fn assert_refused(&self, result: Result<Unpacked>, needle: &str) {
        let err = result.expect_err("the archive was accepted");
        assert!(err.to_string().contains(needle), "error `{err}` does not mention `{needle}`");
        assert_eq!(self.tree(), Vec::<String>::new(), "something was left behind after: {err}");
    }
}

fn good_archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, b"./", tar::EntryType::Directory, b"", None);
    entry(&mut b, b"./sub/", tar::EntryType::Directory, b"", None);
    file(&mut b, "./sub/config.json", b"{}");
    file(&mut b, "model.safetensors", &[7u8; 300_000]);
    entry(&mut b, b"empty/", tar::EntryType::Directory, b"", None);
    finish(b)
}

#[test]
fn unpacks_plain_gzip_and_zstd() {
    let tar = good_archive();
    for (blob, c) in
        [(tar.clone(), Compression::None), (gzip(&tar), Compression::Gzip), (zstd(&tar), Compression::Zstd)]
    {
        let s = Scene::new();
        let u = s.run(&blob, c, &Limits::default()).unwrap();
        assert_eq!(
            u.files,
            vec![
                ArchiveFile { path: "sub/config.json".into(), size: 2 },
                ArchiveFile { path: "model.safetensors".into(), size: 300_000 }
            ]
        );
        assert_eq!(std::fs::read(s.out().join("sub/config.json")).unwrap(), b"{}");
        assert_eq!(std::fs::read(s.out().join("model.safetensors")).unwrap(), vec![7u8; 300_000]);
        assert!(s.out().join("empty").is_dir());
        assert!(!s.staging().exists(), "{c:?}: staging folder left");
        assert_eq!(u.entries, 5);
    }
}

/// An entry of [`DIRECT_FROM`] bytes and more goes through the direct writer: whole aligned
/// buffers directly, its unaligned tail through the page cache; the bytes are the same from
/// plain tar and from gzip (whose reader hands out short reads).
#[test]
fn a_large_entry_is_written_directly_and_whole() {
    let len = DIRECT_FROM as usize + 4097;
    let big: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "small.json", b"{}");
    file(&mut b, "big.safetensors", &big);
    let tar = finish(b);
    for (blob, c) in [(tar.clone(), Compression::None), (gzip(&tar), Compression::Gzip)] {
        let s = Scene::new();
        let u = s.run(&blob, c, &Limits::default()).unwrap();
        assert_eq!(u.files.len(), 2, "{c:?}");
        if crate::direct_write::tests::direct_supported() {
            let cached = crate::direct_write::tests::resident(&s.out().join("big.safetensors"));
            assert!(cached <= 64 << 10, "{c:?}: {cached} bytes of the large entry are in the page cache");
        }
        assert!(std::fs::read(s.out().join("big.safetensors")).unwrap() == big, "{c:?}: the large entry differs");
        assert_eq!(std::fs::read(s.out().join("small.json")).unwrap(), b"{}");
    }
}

#[test]
fn lists_without_writing_and_checks_the_digest() {
    let tar = good_archive();
    let desc = Descriptor::new("x", Digest::of(&tar), tar.len() as u64);
    let layer = Layer { desc: &desc, compression: Compression::None, label: "" };
    let l = list(&tar[..], &layer, &Limits::default()).unwrap();
    assert_eq!(l.files.len(), 2);
    let wrong = Descriptor::new("x", Digest::of(b"other"), tar.len() as u64);
    let layer = Layer { desc: &wrong, compression: Compression::None, label: "" };
    assert!(matches!(list(&tar[..], &layer, &Limits::default()), Err(Error::DigestMismatch { .. })));
}

#[test]
fn refuses_dot_dot() {
    let s = Scene::new();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "ok.txt", b"fine");
    file(&mut b, "../../outside/evil", b"pwned");
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "contains `..`");
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "a/../../outside/evil", b"pwned");
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "contains `..`");
}

#[test]
fn refuses_absolute_paths() {
    let s = Scene::new();
    let target = format!("{}/outside/evil", s.root.display());
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &target, b"pwned");
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "absolute path");
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, b"/", tar::EntryType::Directory, b"", None);
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "absolute path");
}

#[test]
fn refuses_symlink_out() {
    let s = Scene::new();
    let target = format!("{}/outside", s.root.display());
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, b"link", tar::EntryType::Symlink, b"", Some(target.as_bytes()));
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "symlinks are refused");
    // Even one that points inside the archive.
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "a.txt", b"x");
    entry(&mut b, b"b.txt", tar::EntryType::Symlink, b"", Some(b"a.txt"));
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "symlinks are refused");
}

#[test]
fn refuses_hard_link_out() {
    let s = Scene::new();
    std::fs::write(s.root.join("outside/secret"), b"secret").unwrap();
    let target = format!("{}/outside/secret", s.root.display());
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, b"hl", tar::EntryType::Link, b"", Some(target.as_bytes()));
    let err = s.run(&finish(b), Compression::None, &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("hard links are refused"), "{err}");
    assert!(!s.out().join("hl").exists());
    assert_eq!(std::fs::read(s.root.join("outside/secret")).unwrap(), b"secret");
    assert!(!s.staging().exists());
}

#[test]
fn refuses_symlink_then_file_through_it() {
    let s = Scene::new();
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, b"d", tar::EntryType::Symlink, b"", Some(b"../outside"));
    file(&mut b, "d/evil", b"pwned");
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "symlinks are refused");
}

#[test]
fn refuses_devices_and_fifos() {
    for (kind, needle) in [
        (tar::EntryType::Char, "device entries are refused"),
        (tar::EntryType::Block, "device entries are refused"),
        (tar::EntryType::Fifo, "FIFO entries are refused"),
    ] {
        let s = Scene::new();
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "ok.txt", b"fine");
        entry(&mut b, b"dev", kind, b"", None);
        s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), needle);
    }
}

#[test]
fn refuses_huge_sparse_entries() {
    // A GNU sparse entry claiming a 1 TiB file made of holes.
    let s = Scene::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(0);
    h.set_path("holes.bin").unwrap();
    h.as_gnu_mut().unwrap().set_real_size(1 << 40);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "sparse");
    // PAX (GNU sparse format 1.0) records on an ordinary-looking entry.
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("GNU.sparse.major", &b"1"[..]), ("GNU.sparse.realsize", &b"1099511627776"[..])]).unwrap();
    file(&mut b, "holes.bin", b"");
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "sparse");
}

fn zeros_archive(mib: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "zeros.bin", &vec![0u8; mib << 20]);
    finish(b)
}

fn small_allowance() -> Limits {
    Limits { ratio_allowance: 64 << 10, ..Limits::default() }
}

#[test]
fn refuses_gzip_bomb() {
    let s = Scene::new();
    let blob = gzip(&zeros_archive(4));
    assert!(blob.len() * 100 < 4 << 20, "not a bomb: {} bytes", blob.len());
    s.assert_refused(s.run(&blob, Compression::Gzip, &small_allowance()), "decompression ratio");
}

#[test]
fn refuses_zstd_bomb() {
    let s = Scene::new();
    let blob = zstd(&zeros_archive(4));
    assert!(blob.len() * 100 < 4 << 20, "not a bomb: {} bytes", blob.len());
    s.assert_refused(s.run(&blob, Compression::Zstd, &small_allowance()), "decompression ratio");
}

#[test]
fn the_ratio_cap_lets_ordinary_compression_through() {
    let s = Scene::new();
    let blob = gzip(&zeros_archive(2)); // within the default 64 MiB allowance
    s.run(&blob, Compression::Gzip, &Limits::default()).unwrap();
    assert_eq!(std::fs::metadata(s.out().join("zeros.bin")).unwrap().len(), 2 << 20);
}

#[test]
fn refuses_too_many_entries() {
    let s = Scene::new();
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..11 {
        file(&mut b, &format!("f{i}"), b"x");
    }
    let limits = Limits { max_entries: 10, ..Limits::default() };
    s.assert_refused(s.run(&finish(b), Compression::None, &limits), "more than 10 entries");
}

#[test]
fn refuses_entries_over_the_size_caps() {
    let s = Scene::new();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "big", &[1u8; 5000]);
    let limits = Limits { max_entry_size: 4096, ..Limits::default() };
    s.assert_refused(s.run(&finish(b), Compression::None, &limits), "single-file cap");
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "a", &[1u8; 3000]);
    file(&mut b, "b", &[1u8; 3000]);
    let limits = Limits { max_total_size: 5000, ..Limits::default() };
    s.assert_refused(s.run(&finish(b), Compression::None, &limits), "total size cap");
}

#[test]
fn refuses_duplicate_entries() {
    let s = Scene::new();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "config.json", b"{\"good\":1}");
    file(&mut b, "./config.json", b"{\"evil\":1}");
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "repeats an earlier entry");
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "a", b"file");
    file(&mut b, "a/b", b"under a file");
    s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), "both a file and a folder");
}

#[test]
fn refuses_a_digest_mismatch_and_leaves_nothing() {
    let s = Scene::new();
    let tar = good_archive();
    let desc = Descriptor::new("x", Digest::of(b"something else"), tar.len() as u64);
    let err = s.run_desc(&tar, &desc, Compression::None, &Limits::default());
    s.assert_refused(err, "digest mismatch");
    let desc = Descriptor::new("x", Digest::of(&tar), tar.len() as u64 - 1);
    s.assert_refused(s.run_desc(&tar, &desc, Compression::None, &Limits::default()), "expected");
}

#[test]
fn refuses_data_after_the_end_and_bad_names() {
    let s = Scene::new();
    let mut tar = good_archive();
    tar.extend_from_slice(&[0u8; 1024]);
    let mut hidden = tar::Builder::new(Vec::new());
    file(&mut hidden, "hidden", b"unchecked");
    tar.extend_from_slice(&finish(hidden));
    s.assert_refused(s.run(&tar, Compression::None, &Limits::default()), "after the end of the archive");
    for (name, needle) in [
        (&b"a\\b"[..], "backslash"),
        (b"C:x", "drive-letter"),
        (b"\xff\xfe", "not UTF-8"),
        (b".modelsign-partial/x", "`.modelsign-partial`"),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "ok", b"x");
        entry(&mut b, name, tar::EntryType::Regular, b"x", None);
        s.assert_refused(s.run(&finish(b), Compression::None, &Limits::default()), needle);
    }
}

#[test]
fn refuses_garbage_and_truncated_streams() {
    let s = Scene::new();
    let blob = gzip(&good_archive());
    s.assert_refused(s.run(&blob[..blob.len() / 2], Compression::Gzip, &Limits::default()), "");
    s.assert_refused(s.run(b"not a gzip stream at all", Compression::Gzip, &Limits::default()), "");
    s.assert_refused(s.run(b"not a zstd stream at all", Compression::Zstd, &Limits::default()), "");
}

#[test]
fn place_refuses_a_symlink_in_the_output_folder() {
    let s = Scene::new();
    #[cfg(unix)]
    std::os::unix::fs::symlink(s.root.join("outside"), s.out().join("sub")).unwrap();
    let tar = good_archive();
    let err = s.run(&tar, Compression::None, &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(std::fs::read_dir(s.root.join("outside")).unwrap().count(), 0);
    assert!(!s.staging().exists());
}

#[test]
fn a_filter_selects_files_but_every_entry_is_checked() {
    let s = Scene::new();
    let tar = good_archive();
    let desc = Descriptor::new("x", Digest::of(&tar), tar.len() as u64);
    let layer = Layer { desc: &desc, compression: Compression::None, label: "" };
    let only_json = |p: &str| p.ends_with(".json");
    let u = unpack(&tar[..], &layer, &Limits::default(), Some(&only_json), &s.staging(), &s.out()).unwrap();
    assert_eq!(u.files.len(), 1);
    assert!(s.out().join("sub/config.json").is_file());
    assert!(!s.out().join("model.safetensors").exists());
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "x.json", b"{}");
    file(&mut b, "../evil.bin", b"x");
    let bad = finish(b);
    let desc = Descriptor::new("x", Digest::of(&bad), bad.len() as u64);
    let layer = Layer { desc: &desc, compression: Compression::None, label: "" };
    assert!(unpack(&bad[..], &layer, &Limits::default(), Some(&only_json), &s.staging(), &s.out()).is_err());
    assert!(!s.out().join("x.json").exists());
}
