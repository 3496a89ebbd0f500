//! Signing and verifying a model folder (or a single model file) on disk with a detached
//! signature file, interchangeable with `model_signing sign|verify key|certificate`.
//!
//! Signing writes what `model_signing` writes: an OMS v1.0 statement over every file
//! (git paths and ignored paths left out), in a Sigstore bundle. The signature file
//! defaults to `PATH/model.sig` for a folder (`PATH.sig` for a single file); when it lies
//! inside the model it is left out of the signed files and recorded in `ignore_paths`,
//! along with `.git`, `.github`, `.gitattributes`, `.gitignore` and the caller's ignore
//! paths. Files are hashed in parallel, one thread per core.
//!
//! Verification checks the bundle against the trust policy, checks the statement, then
//! the folder: the statement's own `ignore_paths` (and the signature file) are left out,
//! and the remaining files must be exactly the signed ones with the signed digests.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::bundle::{Signer, TrustPolicy, VerifiedStatement, verify_bundle};
use super::oms::{self, Manifest, Resource};
use crate::digest_cache::{DigestCache, HashSummary};
use crate::error::{Error, Result};
use crate::folder::{self, ModelFiles, ScanOptions};
use crate::progress::{NoProgress, Progress};

/// The signature file name `model_signing` uses.
pub const SIGNATURE_FILE: &str = "model.sig";

/// The result of [`sign_folder`].
#[derive(Debug, Clone)]
pub struct SignedFolder {
    /// Where the signature was written.
    pub signature_path: PathBuf,
    /// What was signed.
    pub manifest: Manifest,
    /// The bundle bytes written.
    pub bundle: Vec<u8>,
    /// Which files were read, and which digests came from the digest cache.
    pub hashing: HashSummary,
}

/// The result of [`verify_folder`]: the folder matches a trusted signature.
#[derive(Debug, Clone)]
pub struct FolderVerification {
    pub verified: VerifiedStatement,
    pub manifest: Manifest,
}

/// Knobs for [`verify_folder_with`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Tolerate files that the signature does not cover (`model_signing verify
    /// --ignore_unsigned_files`). Missing or changed files still fail.
    pub ignore_unsigned_files: bool,
    /// Hashing threads; 0 means one per core.
    pub threads: usize,
    /// More paths to leave out (`model_signing verify --ignore-paths`): file-system paths,
    /// relative to the working directory or absolute; those outside the model are ignored.
    pub ignore_paths: Vec<PathBuf>,
}

/// Where the signature goes by default: `PATH/model.sig`, or `PATH.sig` for a file.
pub fn default_signature_path(model: &Path) -> PathBuf {
    if model.is_dir() {
        model.join(SIGNATURE_FILE)
    } else {
        let mut name = model.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".sig");
        model.with_file_name(name)
    }
}

/// The model's name as `model_signing` records it: the folder's base name, resolved when
/// the path has none (`.`).
fn model_name(model: &Path) -> String {
    let name = match model.file_name() {
        Some(name) => Some(name.to_os_string()),
        None => fs::canonicalize(model).ok().and_then(|p| p.file_name().map(|n| n.to_os_string())),
    };
    name.map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `target` relative to the folder `model`, `/`-separated, if it lies inside it.
fn relative_inside(model: &Path, target: &Path) -> Result<Option<String>> {
    if !model.is_dir() {
        return Ok(None);
    }
    let root = fs::canonicalize(model).map_err(|e| Error::io(model, e))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(file_name) = target.file_name() else { return Ok(None) };
    let Ok(parent) = fs::canonicalize(parent) else { return Ok(None) };
    let Ok(rel) = parent.join(file_name).strip_prefix(&root).map(Path::to_path_buf) else { return Ok(None) };
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(c) => parts.push(c.to_string_lossy().into_owned()),
            _ => return Ok(None),
        }
    }
    Ok(if parts.is_empty() { None } else { Some(parts.join("/")) })
}

fn resources_of(files: &ModelFiles, digests: Vec<crate::digest::Digest>) -> Vec<Resource> {
    files
        .files
        .iter()
        .zip(digests)
        .map(|(f, digest)| Resource {
            name: if files.single_file { oms::SINGLE_FILE_NAME.to_string() } else { f.path.clone() },
            digest,
        })
        .collect()
}

/// Signs the model at `model` and writes the signature (atomically) to `signature_path`
/// or [`default_signature_path`]. One hashing thread per core, no progress reports.
pub fn sign_folder(
    model: &Path,
    signer: &Signer,
    signature_path: Option<&Path>,
    options: &ScanOptions,
) -> Result<SignedFolder> {
    sign_folder_with(model, signer, signature_path, options, folder::default_threads(), &NoProgress)
}

/// [`sign_folder`] with a thread count and progress reports.
pub fn sign_folder_with(
    model: &Path,
    signer: &Signer,
    signature_path: Option<&Path>,
    options: &ScanOptions,
    threads: usize,
    progress: &dyn Progress,
) -> Result<SignedFolder> {
    sign_folder_cached(model, signer, signature_path, options, threads, progress, None)
}

/// [`sign_folder_with`], taking the digests of files unchanged since they were last hashed
/// from `cache`. (Verification never does.)
pub fn sign_folder_cached(
    model: &Path,
    signer: &Signer,
    signature_path: Option<&Path>,
    options: &ScanOptions,
    threads: usize,
    progress: &dyn Progress,
    cache: Option<&DigestCache>,
) -> Result<SignedFolder> {
    let signature_path = signature_path.map(Path::to_path_buf).unwrap_or_else(|| default_signature_path(model));
    let mut options = options.clone();
    if let Some(rel) = relative_inside(model, &signature_path)?
        && !options.ignore_paths.contains(&rel)
    {
        options.ignore_paths.push(rel);
    }
    let files = folder::scan(model, &options)?;
    let before = cache.map(DigestCache::stats);
    let digests = folder::hash_files_cached(&files.files, threads, progress, cache)?;
    let after = cache.map(DigestCache::stats);
    let hashing = HashSummary::new(
        files.files.len() as u64,
        files.files.iter().map(|f| f.size).sum(),
        before.as_ref().zip(after.as_ref()),
    );
    let resources = resources_of(&files, digests);

    // `model_signing` only knows exact paths: record what the globs left out as such.
    let mut ignore_paths = options.ignore_paths.clone();
    if options.ignore_git_paths {
        ignore_paths.extend(folder::GIT_PATHS.iter().map(|p| p.to_string()));
    }
    if !options.ignore.is_empty() && !files.single_file {
        let everything = folder::scan(model, &ScanOptions { ignore: Vec::new(), ..options.clone() })?;
        let kept: BTreeSet<&str> = files.files.iter().map(|f| f.path.as_str()).collect();
        ignore_paths
            .extend(everything.files.iter().filter(|f| !kept.contains(f.path.as_str())).map(|f| f.path.clone()));
    }

    let statement = oms::build_statement(&model_name(model), &resources, &ignore_paths, options.allow_symlinks);
    let bundle = signer.sign_statement(&statement).map_err(Error::from)?;
    crate::atomic_file::write(&signature_path, &bundle)?;
    let manifest = Manifest::from_statement(&statement).map_err(Error::from)?;
    Ok(SignedFolder { signature_path, manifest, bundle, hashing })
}

/// Verifies the model at `model` against the signature at `signature_path` (default:
/// [`default_signature_path`]) and `policy`.
pub fn verify_folder(model: &Path, signature_path: Option<&Path>, policy: &TrustPolicy) -> Result<FolderVerification> {
    verify_folder_with(model, signature_path, policy, &VerifyOptions::default(), &NoProgress)
}

/// [`verify_folder`] with options and progress reports.
pub fn verify_folder_with(
    model: &Path,
    signature_path: Option<&Path>,
    policy: &TrustPolicy,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<FolderVerification> {
    let signature_path = signature_path.map(Path::to_path_buf).unwrap_or_else(|| default_signature_path(model));
    let bundle = read_limited(&signature_path)?;
    let verified = verify_bundle(&bundle, policy).map_err(Error::from)?;
    let manifest = Manifest::from_statement(verified.statement()).map_err(Error::from)?;

    let mut ignore_paths = manifest.ignore_paths.clone();
    if let Some(rel) = relative_inside(model, &signature_path)? {
        ignore_paths.push(rel);
    }
    for path in &options.ignore_paths {
        if let Some(rel) = relative_inside(model, path)? {
            ignore_paths.push(rel);
        }
    }
    // Git paths are left out as `model_signing verify` does by default, unless the
    // signature covers them (a model signed with git paths included).
    let signed_under =
        |top: &str| manifest.resources.iter().any(|r| r.name == top || r.name.starts_with(&format!("{top}/")));
    ignore_paths.extend(folder::GIT_PATHS.iter().filter(|p| !signed_under(p)).map(|p| p.to_string()));
    let scan_options = ScanOptions {
        ignore: Vec::new(),
        ignore_git_paths: false,
        allow_symlinks: manifest.allow_symlinks,
        ignore_paths,
    };
    let files = folder::scan_to_verify(model, &scan_options)?;
    if files.single_file != manifest.is_single_file() {
        return Err(Error::from(super::Error::InvalidStatement(if files.single_file {
            format!("the signature is for a folder but {} is a file", model.display())
        } else {
            format!("the signature is for a single file but {} is a folder", model.display())
        })));
    }

    let expected: HashMap<&str, &crate::digest::Digest> =
        manifest.resources.iter().map(|r| (r.name.as_str(), &r.digest)).collect();
    let name_of =
        |f: &folder::FileEntry| if files.single_file { oms::SINGLE_FILE_NAME.to_string() } else { f.path.clone() };
    let present: BTreeSet<String> = files.files.iter().map(name_of).collect();
    let missing: Vec<String> =
        manifest.resources.iter().filter(|r| !present.contains(&r.name)).map(|r| r.name.clone()).collect();
    if !missing.is_empty() {
        return Err(Error::from(super::Error::MissingFiles(missing)));
    }
    let extra: Vec<String> = present.iter().filter(|n| !expected.contains_key(n.as_str())).cloned().collect();
    if !extra.is_empty() && !options.ignore_unsigned_files {
        return Err(Error::from(super::Error::ExtraFiles(extra)));
    }
    let to_hash: Vec<folder::FileEntry> =
        files.files.iter().filter(|f| expected.contains_key(name_of(f).as_str())).cloned().collect();
    let threads = if options.threads == 0 { folder::default_threads() } else { options.threads };
    let digests = folder::hash_files(&to_hash, threads, progress)?;
    for (file, actual) in to_hash.iter().zip(digests) {
        let name = name_of(file);
        let expected = expected[name.as_str()];
        if &actual != expected {
            return Err(Error::from(super::Error::HashMismatch { path: name, expected: expected.clone(), actual }));
        }
    }
    Ok(FolderVerification { verified, manifest })
}

/// Reads a signature file: a regular file only (a FIFO or device is refused without
/// blocking), counting the bytes read rather than trusting `stat`.
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let limit = super::MAX_BUNDLE_SIZE as u64;
    crate::local_fs::read_capped_with(path, limit, "signature", || {
        Error::from(super::Error::MalformedBundle(format!("{} is larger than {limit} bytes", path.display())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::Error as SignError;
    use crate::sign::bundle::VerifiedBy;
    use crate::sign::bundle::tests::fixture;
    use crate::sign::certs::{CertChain, parse_pem_certificates};
    use crate::sign::keys::{Algorithm, PublicKey, SigningKey};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sign")
    }

    fn key_policy(name: &str) -> TrustPolicy {
        TrustPolicy::new().trust_key(PublicKey::from_pem(&fixture(&format!("keys/{name}.pub"))).unwrap())
    }

    fn root_policy() -> TrustPolicy {
        TrustPolicy::new().trust_certificates(parse_pem_certificates(&fixture("certs/root.pem"), "root").unwrap())
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    fn sign_err(result: Result<FolderVerification>) -> SignError {
        match result {
            Err(Error::Sign(e)) => e,
            Err(other) => panic!("not a signing error: {other}"),
            Ok(_) => panic!("verification passed"),
        }
    }

    #[test]
    fn verifies_model_signing_key_signatures() {
        let model = fixtures().join("model");
        for key in ["p256", "p384", "p521"] {
            let sig = fixtures().join(format!("sigs/{key}.sig"));
            let result = verify_folder(&model, Some(&sig), &key_policy(key)).unwrap();
            let names: Vec<&str> = result.manifest.resources.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, ["Zeta", "a/b.txt", "a-b.txt", "a.txt", "empty", "sub dir/poids é ü.bin"], "{key}");
            assert_eq!(result.manifest.model_name, "model");
            // Another curve's key does not verify it.
            let other = if key == "p256" { "p384" } else { "p256" };
            assert!(matches!(
                sign_err(verify_folder(&model, Some(&sig), &key_policy(other))),
                SignError::BadSignature(_)
            ));
        }
    }

    #[test]
    fn verifies_model_signing_certificate_signature() {
        let model = fixtures().join("model");
        let sig = fixtures().join("sigs/certificate.sig");
        let result = verify_folder(&model, Some(&sig), &root_policy()).unwrap();
        assert!(matches!(result.verified.verified_by(), VerifiedBy::Certificate(_)));
        let other = TrustPolicy::new()
            .trust_certificates(parse_pem_certificates(&fixture("certs/other-root.pem"), "o").unwrap());
        assert!(matches!(sign_err(verify_folder(&model, Some(&sig), &other)), SignError::UntrustedChain(_)));
    }

    #[test]
    fn verifies_signature_inside_the_model_and_single_files() {
        let model = fixtures().join("model-inside");
        let result = verify_folder(&model, None, &key_policy("p256")).unwrap();
        assert!(result.manifest.ignore_paths.contains(&"model.sig".to_string()));
        let single = fixtures().join("single/weights.bin");
        let result = verify_folder(&single, Some(&fixtures().join("sigs/single.sig")), &key_policy("p256")).unwrap();
        assert!(result.manifest.is_single_file());
        // A folder signature does not verify a single file, nor the reverse.
        assert!(verify_folder(&single, Some(&fixtures().join("sigs/p256.sig")), &key_policy("p256")).is_err());
        assert!(
            verify_folder(&fixtures().join("model"), Some(&fixtures().join("sigs/single.sig")), &key_policy("p256"))
                .is_err()
        );
    }

    #[test]
    fn tampered_folders_fail_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        copy_dir(&fixtures().join("model"), &model);
        let sig = fixtures().join("sigs/p256.sig");
        let policy = key_policy("p256");
        // git files are ignored by default.
        fs::create_dir_all(model.join(".git")).unwrap();
        fs::write(model.join(".git/HEAD"), "ref").unwrap();
        verify_folder(&model, Some(&sig), &policy).unwrap();

        fs::write(model.join("sub dir/poids é ü.bin"), "poison").unwrap();
        let err = sign_err(verify_folder(&model, Some(&sig), &policy));
        assert!(matches!(&err, SignError::HashMismatch { path, .. } if path == "sub dir/poids é ü.bin"), "{err}");
        fs::write(model.join("sub dir/poids é ü.bin"), "weights").unwrap();

        fs::write(model.join("extra.bin"), "x").unwrap();
        let err = sign_err(verify_folder(&model, Some(&sig), &policy));
        assert!(matches!(&err, SignError::ExtraFiles(f) if f == &["extra.bin"]), "{err}");
        let lenient = VerifyOptions { ignore_unsigned_files: true, threads: 2, ..Default::default() };
        verify_folder_with(&model, Some(&sig), &policy, &lenient, &NoProgress).unwrap();
        fs::remove_file(model.join("extra.bin")).unwrap();

        fs::remove_file(model.join("empty")).unwrap();
        let err = sign_err(verify_folder(&model, Some(&sig), &policy));
        assert!(matches!(&err, SignError::MissingFiles(f) if f == &["empty"]), "{err}");
        assert!(verify_folder_with(&model, Some(&sig), &policy, &lenient, &NoProgress).is_err());
    }

    #[test]
    fn signs_like_model_signing_and_verifies_back() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("my model");
        copy_dir(&fixtures().join("model"), &model);
        fs::create_dir_all(model.join(".git")).unwrap();
        fs::write(model.join(".git/HEAD"), "ref").unwrap();
        let key = SigningKey::from_pem(&fixture("keys/p384.key"), None).unwrap();
        let signed = sign_folder(&model, &Signer::from_key(key), None, &ScanOptions::default()).unwrap();
        assert_eq!(signed.signature_path, model.join("model.sig"));
        assert_eq!(fs::read(&signed.signature_path).unwrap(), signed.bundle);
        let mut ignored = signed.manifest.ignore_paths.clone();
        ignored.sort();
        assert_eq!(ignored, [".git", ".gitattributes", ".github", ".gitignore", "model.sig"]);
        assert_eq!(signed.manifest.model_name, "my model");
        // Same resources as model_signing found.
        let theirs =
            verify_folder(&fixtures().join("model"), Some(&fixtures().join("sigs/p384.sig")), &key_policy("p384"))
                .unwrap();
        assert_eq!(signed.manifest.resources, theirs.manifest.resources);
        verify_folder(&model, None, &key_policy("p384")).unwrap();
        // No stray temporary file.
        assert!(fs::read_dir(&model).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    }

    #[test]
    fn git_paths_signed_on_purpose_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m");
        copy_dir(&fixtures().join("model"), &model);
        let key = SigningKey::generate(Algorithm::P256).unwrap();
        let policy = TrustPolicy::new().trust_key(key.public_key().clone());
        let options = ScanOptions { ignore_git_paths: false, ..ScanOptions::default() };
        let signed = sign_folder(&model, &Signer::from_key(key), None, &options).unwrap();
        assert!(signed.manifest.resources.iter().any(|r| r.name == ".gitattributes"));
        verify_folder(&model, None, &policy).unwrap();
        fs::write(model.join(".gitattributes"), "changed").unwrap();
        let err = sign_err(verify_folder(&model, None, &policy));
        assert!(matches!(&err, SignError::HashMismatch { path, .. } if path == ".gitattributes"), "{err}");
    }

    #[test]
    fn glob_ignores_are_recorded_as_paths() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m");
        copy_dir(&fixtures().join("model"), &model);
        let sig = dir.path().join("out.sig");
        let key = SigningKey::generate(Algorithm::P256).unwrap();
        let policy = TrustPolicy::new().trust_key(key.public_key().clone());
        let options = ScanOptions { ignore: vec!["a*.txt".into()], ..ScanOptions::default() };
        let signed = sign_folder(&model, &Signer::from_key(key), Some(&sig), &options).unwrap();
        assert!(signed.manifest.ignore_paths.contains(&"a.txt".to_string()));
        assert!(signed.manifest.ignore_paths.contains(&"a-b.txt".to_string()));
        assert!(!signed.manifest.ignore_paths.contains(&"model.sig".to_string()));
        verify_folder(&model, Some(&sig), &policy).unwrap();
    }

    #[test]
    fn signs_with_a_certificate_chain() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m");
        copy_dir(&fixtures().join("model"), &model);
        let key = SigningKey::from_pem(&fixture("certs/leaf.key"), None).unwrap();
        let chain = CertChain::from_pems(&fixture("certs/leaf.pem"), &[&fixture("certs/intermediate.pem")]).unwrap();
        sign_folder(&model, &Signer::with_certificates(key, chain).unwrap(), None, &ScanOptions::default()).unwrap();
        verify_folder(&model, None, &root_policy()).unwrap();
    }

    #[test]
    fn single_file_model_signature_goes_next_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.bin");
        fs::write(&file, "w").unwrap();
        let key = SigningKey::generate(Algorithm::P521).unwrap();
        let policy = TrustPolicy::new().trust_key(key.public_key().clone());
        let signed = sign_folder(&file, &Signer::from_key(key), None, &ScanOptions::default()).unwrap();
        assert_eq!(signed.signature_path, dir.path().join("w.bin.sig"));
        assert!(signed.manifest.is_single_file());
        verify_folder(&file, None, &policy).unwrap();
    }

    #[test]
    fn encrypted_openssl_key_signs() {
        let key = SigningKey::from_pem(&fixture("keys/p256-encrypted.key"), Some("modelsign")).unwrap();
        assert_eq!(key.algorithm(), Algorithm::P256);
        assert!(SigningKey::from_pem(&fixture("keys/p256-encrypted.key"), Some("nope")).is_err());
    }
}
