//! The setup most registry tests share, in one line: the test bed's tools with a private
//! home ([`Peers`]), one registry of a kind, the fault proxy in front of it, and a scratch
//! folder. `let bed = proxied_bed!(RegistryKind::Distribution);` skips the test without the
//! test bed, as `require_testbed!` does.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{FaultProxy, Peers, Registry, RegistryKind, Testbed, keygen, run_ok, write_tiny_model};

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
