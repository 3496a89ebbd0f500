#!/usr/bin/env python3
"""A TUF repository for modelsign's tests, made with python-tuf (`tuf.api.metadata`), an
independent implementation of the TUF specification. Consistent snapshots, hash-prefixed
target files, as Sigstore's repository lays them out:

    DIR/repo/N.root.json  timestamp.json  N.snapshot.json  N.targets.json  targets/<sha256>.<name>
    DIR/keys/<role>-<n>.pem   DIR/work/<role>.json (the current metadata, signed)

Usage: tuf_repo.py DIR COMMAND [ARGS]  (see the commands below; tests/integration/trust_update.rs)
  init FILE...                 root/targets/snapshot/timestamp v1; targets key is Ed25519
  release [FILE...]            new targets (with these files), snapshot and timestamp versions
  rotate-root [--keys N] [--threshold T] [--sign-old 0|1] [--sign-new K] [--rotate-timestamp]
  timestamp [--version V] [--snapshot-version S] [--expired] [--rogue] [--pad BYTES]
  snapshot-rollback-targets    new snapshot + timestamp listing targets.json one version back
  mix-snapshot                 timestamp names snapshot V+1, whose file holds the old snapshot V
  corrupt-target NAME [--append] change the served bytes of a target (same length, or longer)
  serve PORTFILE               serve DIR/repo on 127.0.0.1 (port written to PORTFILE)
"""
import datetime
import functools
import hashlib
import http.server
import json
import os
import sys

from securesystemslib.signer import CryptoSigner
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from tuf.api.metadata import MetaFile, Metadata, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

D = sys.argv[1]
REPO, KEYS, WORK = (os.path.join(D, p) for p in ("repo", "keys", "work"))
SER = JSONSerializer(compact=False)


def future(days=30):
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=days)


def new_key(name, kind="ecdsa"):
    signer = CryptoSigner.generate_ed25519() if kind == "ed25519" else CryptoSigner.generate_ecdsa()
    with open(os.path.join(KEYS, name + ".pem"), "wb") as f:
        f.write(signer.private_bytes)
    return signer


def signers_of(root, role):
    """Signers for the keys of `role` in `root`, from DIR/keys."""
    out = []
    for name in sorted(os.listdir(KEYS)):
        with open(os.path.join(KEYS, name), "rb") as f:
            s = CryptoSigner(load_pem_private_key(f.read(), None))
        if s.public_key.keyid in root.roles[role].keyids:
            out.append(s)
    return out


def load(role):
    return Metadata.from_file(os.path.join(WORK, role + ".json"))


def save(md, signers, publish_as):
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)
    md.to_file(os.path.join(WORK, md.signed.type + ".json"), SER)
    if publish_as:
        md.to_file(os.path.join(REPO, publish_as), SER)


def root():
    return load("root").signed


def publish_target(path, targets):
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    tf = TargetFile.from_data(name, data, ["sha256"])
    targets.targets[name] = tf
    with open(os.path.join(REPO, "targets", f"{tf.hashes['sha256']}.{name}"), "wb") as f:
        f.write(data)


def write_timestamp(snapshot_version, version=None, expires=None, signers=None, pad=0):
    ts = load("timestamp")
    ts.signed.version = version if version is not None else ts.signed.version + 1
    ts.signed.snapshot_meta = MetaFile(version=snapshot_version)
    ts.signed.expires = expires or future(1)
    save(ts, signers if signers is not None else signers_of(root(), "timestamp"), None)
    if pad:
        doc = json.loads(SER.serialize(ts))
        doc["padding"] = "x" * pad
        with open(os.path.join(REPO, "timestamp.json"), "w") as f:
            json.dump(doc, f)
    else:
        ts.to_file(os.path.join(REPO, "timestamp.json"), SER)


def release(files):
    r = root()
    targets = load("targets")
    targets.signed.version += 1
    for path in files:
        publish_target(path, targets.signed)
    save(targets, signers_of(r, "targets"), f"{targets.signed.version}.targets.json")
    snap = load("snapshot")
    snap.signed.version += 1
    snap.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
    save(snap, signers_of(r, "snapshot"), f"{snap.signed.version}.snapshot.json")
    write_timestamp(snap.signed.version)


def opt(args, name, default=None):
    return args[args.index(name) + 1] if name in args else default


def main():
    cmd, args = sys.argv[2], sys.argv[3:]
    if cmd == "init":
        for p in (REPO, KEYS, WORK, os.path.join(REPO, "targets")):
            os.makedirs(p, exist_ok=True)
        r = Root(expires=future(365), consistent_snapshot=True)
        for role, kind in (("root", "ecdsa"), ("targets", "ed25519"), ("snapshot", "ecdsa"), ("timestamp", "ecdsa")):
            r.add_key(new_key(f"{role}-1", kind).public_key, role)
        md = Metadata(r)
        save(md, signers_of(r, "root"), "1.root.json")
        targets = Metadata(Targets(expires=future(90)))
        for path in args:
            publish_target(path, targets.signed)
        save(targets, signers_of(r, "targets"), "1.targets.json")
        snap = Metadata(Snapshot(expires=future(7)))
        save(snap, signers_of(r, "snapshot"), "1.snapshot.json")
        ts = Metadata(Timestamp(expires=future(1)))
        save(ts, signers_of(r, "timestamp"), "timestamp.json")
    elif cmd == "release":
        release(args)
    elif cmd == "rotate-root":
        old_md = load("root")
        old = old_md.signed
        old_signers = signers_of(old, "root")
        new = Root.from_dict(old.to_dict())
        new.version = old.version + 1
        for keyid in list(new.roles["root"].keyids):
            new.revoke_key(keyid, "root")
        fresh = [new_key(f"root-{new.version}-{i}") for i in range(int(opt(args, "--keys", "1")))]
        for s in fresh:
            new.add_key(s.public_key, "root")
        new.roles["root"].threshold = int(opt(args, "--threshold", "1"))
        if "--rotate-timestamp" in args:
            for keyid in list(new.roles["timestamp"].keyids):
                new.revoke_key(keyid, "timestamp")
            new.add_key(new_key(f"timestamp-{new.version}").public_key, "timestamp")
        md = Metadata(new)
        signers = (old_signers if opt(args, "--sign-old", "1") == "1" else []) + fresh[: int(opt(args, "--sign-new", len(fresh)))]
        save(md, signers, f"{new.version}.root.json")
        if "--rotate-timestamp" in args:
            write_timestamp(load("snapshot").signed.version)
    elif cmd == "timestamp":
        snap_version = int(opt(args, "--snapshot-version", load("snapshot").signed.version))
        version = opt(args, "--version")
        expires = future(-1) if "--expired" in args else None
        signers = [CryptoSigner.generate_ecdsa()] if "--rogue" in args else None
        write_timestamp(snap_version, int(version) if version else None, expires, signers, int(opt(args, "--pad", "0")))
    elif cmd == "snapshot-rollback-targets":
        r = root()
        snap = load("snapshot")
        snap.signed.version += 1
        snap.signed.meta["targets.json"] = MetaFile(version=snap.signed.meta["targets.json"].version - 1)
        save(snap, signers_of(r, "snapshot"), f"{snap.signed.version}.snapshot.json")
        write_timestamp(snap.signed.version)
    elif cmd == "mix-snapshot":
        snap = load("snapshot")
        v = snap.signed.version
        with open(os.path.join(REPO, f"{v}.snapshot.json"), "rb") as f:
            old = f.read()
        with open(os.path.join(REPO, f"{v + 1}.snapshot.json"), "wb") as f:
            f.write(old)
        write_timestamp(v + 1)
    elif cmd == "corrupt-target":
        name = args[0]
        tf = load("targets").signed.targets[name]
        path = os.path.join(REPO, "targets", f"{tf.hashes['sha256']}.{name}")
        with open(path, "rb") as f:
            data = bytearray(f.read())
        if "--append" in args:
            data += b" " * 64
        else:
            data[-2] ^= 0x01
        with open(path, "wb") as f:
            f.write(data)
    elif cmd == "serve":
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass

        handler = functools.partial(Quiet, directory=REPO)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        with open(args[0] + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(args[0] + ".tmp", args[0])
        server.serve_forever()
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
