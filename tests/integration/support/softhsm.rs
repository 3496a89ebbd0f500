//! A SoftHSM2 token for the PKCS#11 tests: a private `SOFTHSM2_CONF` and token folder in a
//! temporary directory, a token initialised with `softhsm2-util`, and key pairs generated
//! inside it with `pkcs11-tool` (OpenSC), as an administrator would make them. Both come
//! from Debian (`softhsm2`, `opensc`), installed by `scripts/testbed.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::peers::{run_ok, run_stdout};

/// Where Debian's `softhsm2` puts the PKCS#11 module.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// An initialised SoftHSM2 token in its own folder; removed on drop.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    pub label: String,
    pub pin: String,
}

impl SoftHsm {
    /// A fresh token labelled `label` with user PIN `pin`.
    pub fn new(label: &str, pin: &str) -> SoftHsm {
        assert!(
            Path::new(SOFTHSM_MODULE).is_file(),
            "{SOFTHSM_MODULE} is missing: run scripts/testbed.sh (it installs softhsm2 and opensc)"
        );
        let dir = tempfile::Builder::new().prefix("modelsign-softhsm-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm { dir, label: label.to_string(), pin: pin.to_string() };
        run_ok(
            hsm.command("softhsm2-util")
                .args(["--init-token", "--free", "--label", label, "--pin", pin, "--so-pin"])
                .arg(format!("so-{pin}")),
        );
        hsm
    }

    /// The `SOFTHSM2_CONF` file every process using the token needs in its environment.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// `program` with `SOFTHSM2_CONF` set.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SOFTHSM2_CONF", self.conf());
        cmd
    }

    fn tool(&self) -> Command {
        let mut cmd = self.command("pkcs11-tool");
        cmd.args(["--module", SOFTHSM_MODULE, "--token-label", &self.label]);
        cmd
    }

    /// Generates an EC key pair in the token (`curve`: `prime256v1`, `secp384r1`) labelled
    /// `object` with CKA_ID `id`; returns its public key as PEM in `out_dir`.
    pub fn generate_ec_key(&self, object: &str, id: &str, curve: &str, out_dir: &Path) -> PathBuf {
        run_ok(
            self.tool()
                .args(["--login", "--pin", &self.pin, "--keypairgen", "--key-type"])
                .arg(format!("EC:{curve}"))
                .args(["--label", object, "--id", id]),
        );
        // `pkcs11-tool --read-object` cannot export P-384 keys (OpenSC 0.23): the SPKI is
        // built from the public key's CKA_EC_POINT (a DER OCTET STRING holding the point)
        // as pkcs11-tool lists it, and the curve's fixed SPKI prefix.
        let listing = run_stdout(self.tool().args(["--list-objects", "--type", "pubkey"]));
        let block = listing
            .split("Public Key Object")
            .find(|b| b.lines().any(|l| l.trim().strip_prefix("label:").is_some_and(|v| v.trim() == object)))
            .unwrap_or_else(|| panic!("no public key `{object}` in:\n{listing}"));
        let point_hex = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("EC_POINT:"))
            .unwrap_or_else(|| panic!("no EC_POINT in:\n{block}"))
            .trim();
        let point = hex::decode(point_hex).unwrap();
        let (prefix, len) = match curve {
            "prime256v1" => ("3059301306072a8648ce3d020106082a8648ce3d030107034200", 65),
            "secp384r1" => ("3076301006072a8648ce3d020106052b81040022036200", 97),
            other => panic!("no SPKI prefix for {other}"),
        };
        assert_eq!(point.len(), len + 2, "{block}");
        let mut spki = hex::decode(prefix).unwrap();
        spki.extend_from_slice(&point[2..]);
        let der = out_dir.join(format!("{object}.pub.der"));
        let pem = out_dir.join(format!("{object}.pub"));
        std::fs::write(&der, spki).unwrap();
        run_ok(
            Command::new("openssl").args(["pkey", "-pubin", "-inform", "DER", "-in"]).arg(&der).arg("-out").arg(&pem),
        );
        pem
    }

    /// `pkcs11:token=LABEL;object=OBJECT?module-path=…&pin-value=PIN`.
    pub fn uri(&self, object: &str) -> String {
        format!("pkcs11:token={};object={object}?module-path={SOFTHSM_MODULE}&pin-value={}", self.label, self.pin)
    }
}
