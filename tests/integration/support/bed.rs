//! The setup most registry tests share, in one line: the test bed's tools with a private
//! home ([`Peers`]), where the model lives (one registry of a kind, or a layout folder), and
//! a scratch folder: `let bed = bed!(place);`. [`ProxiedBed`] adds the fault proxy in front
//! of the registry: `let bed = proxied_bed!(RegistryKind::Distribution);`. Both skip the test
//! without the test bed, as `require_testbed!` does.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{FaultProxy, Peers, Place, Registry, RegistryKind, Testbed, keygen, run_ok, write_tiny_model};

/// The tools, the place a case's model lives, and a scratch folder.
pub struct Bed {
    pub peers: Peers,
    registry: Option<Registry>,
    pub dir: tempfile::TempDir,
}

/// `bed!(place)` (a [`Place`] or a [`RegistryKind`]): a [`Bed`], or return early from the
/// test (skipped) without the test bed.
#[macro_export]
macro_rules! bed {
    ($place:expr) => {{
        let tb = $crate::require_testbed!();
        $crate::support::Bed::new(&tb, $place)
    }};
}

impl Bed {
    pub fn new(tb: &Testbed, place: impl Into<Place>) -> Bed {
        let registry = match place.into() {
            Place::Registry(kind) => Some(Registry::start_in(tb, kind)),
            Place::Layout => None,
        };
        Bed { peers: Peers::new(tb), registry, dir: tempfile::tempdir().expect("scratch folder") }
    }

    /// The scratch folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn testbed(&self) -> &Testbed {
        self.peers.testbed()
    }

    /// The registry; panics for a layout folder.
    pub fn registry(&self) -> &Registry {
        self.registry.as_ref().expect("this bed's model lives in a layout folder, not a registry")
    }

    pub fn is_registry(&self) -> bool {
        self.registry.is_some()
    }

    /// Where `repo` lives, without a tag: `HOST:PORT/repo` on the registry, else the
    /// scratch folder's `oci:…/layout` (a layout folder has no repositories: every `repo`
    /// is that one folder).
    pub fn repo(&self, repo: &str) -> String {
        match &self.registry {
            Some(registry) => registry.reference(repo),
            None => format!("oci:{}", self.path().join("layout").display()),
        }
    }

    /// `modelsign --plain-http --no-progress`, with the tools' private home.
    pub fn ms(&self) -> Command {
        let mut cmd = self.peers.modelsign();
        cmd.args(["--plain-http", "--no-progress"]);
        cmd
    }
}

/// A registry with the fault proxy in front of it, the tools, and a scratch folder.
pub struct ProxiedBed {
    pub peers: Peers,
    pub registry: Registry,
    pub proxy: FaultProxy,
    pub dir: tempfile::TempDir,
}

/// `proxied_bed!(kind)`: a [`ProxiedBed`], or return early from the test (skipped) without
/// the test bed.
#[macro_export]
macro_rules! proxied_bed {
    ($kind:expr) => {{
        let tb = $crate::require_testbed!();
        $crate::support::ProxiedBed::new(&tb, $kind)
    }};
}

impl ProxiedBed {
    pub fn new(tb: &Testbed, kind: RegistryKind) -> ProxiedBed {
        let peers = Peers::new(tb);
        let registry = Registry::start(kind);
        let proxy = FaultProxy::start(registry.addr());
        ProxiedBed { peers, registry, proxy, dir: tempfile::tempdir().expect("scratch folder") }
    }

    /// The scratch folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `modelsign --plain-http --no-progress`, with the tools' private home.
    pub fn ms(&self) -> Command {
        let mut cmd = self.peers.modelsign();
        cmd.args(["--plain-http", "--no-progress"]);
        cmd
    }

    /// `repo:v1` through the proxy.
    pub fn via_proxy(&self, repo: &str) -> String {
        format!("{}/{repo}:v1", self.proxy.addr())
    }

    /// `repo:v1` on the registry itself.
    pub fn direct(&self, repo: &str) -> String {
        format!("{}/{repo}:v1", self.registry.addr())
    }

    /// Pushes a small model (`<scratch>/tiny`) straight to the registry as `repo:v1`;
    /// returns its reference through the proxy.
    pub fn push_model(&self, repo: &str) -> String {
        let model = write_tiny_model(self.path(), "tiny", 200_000);
        run_ok(self.ms().args(["push", &self.direct(repo)]).arg(&model));
        self.via_proxy(repo)
    }

    /// [`push_model`](Self::push_model), then signs it with a new key; returns the reference
    /// through the proxy and the public key.
    pub fn push_signed_model(&self, repo: &str) -> (String, PathBuf) {
        let reference = self.push_model(repo);
        let (key, public) = keygen(self.path(), "signer", "p256");
        run_ok(self.ms().args(["sign", &self.direct(repo), "--key"]).arg(&key));
        (reference, public)
    }
}
