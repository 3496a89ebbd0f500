#!/usr/bin/env python3
"""A small Docker registry token server for tests (distribution 2.8 `auth: token:`).

    token-server.py --cert-out CERT.pem --user U --password P [--addr 127.0.0.1:0]
                    [--key KEY.pem] [--issuer I] [--service S] [--expires-in SECONDS]
                    [--refresh-token T] [--anonymous-pull]

Prints "listening on 127.0.0.1:PORT" on stdout when ready. Point distribution at it with
  auth: {token: {realm: http://ADDR/token, service: S, issuer: I, rootcertbundle: CERT.pem}}

Endpoints
  GET  /token?service=&scope=...[&offline_token=true]   HTTP basic auth (the Docker token spec)
  POST /token  form: grant_type=password&username=&password=&service=&scope=
               form: grant_type=refresh_token&refresh_token=&service=&scope=   (OAuth2, "identity token")
  GET  /stats  JSON counters, for tests that check how often a client asked for a token

Tokens are real ES256 JWTs signed with an EC P-256 key; the header carries the self-signed
certificate in `x5c` (what distribution 2.8 verifies against `rootcertbundle`) and a libtrust `kid`.
Correct credentials get every requested scope; missing or wrong credentials get 401, unless
--anonymous-pull, which grants `pull` (only) to anonymous GETs. Needs `cryptography`
(the test bed venv has it).
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key) -> str:
    """libtrust's key ID: base32 of the first 240 bits of sha256(DER SPKI), in 12 groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, 48, 4))


def load_or_make_key(path):
    if path:
        try:
            with open(path, "rb") as f:
                return serialization.load_pem_private_key(f.read(), password=None)
        except FileNotFoundError:
            pass
    key = ec.generate_private_key(ec.SECP256R1())
    if path:
        with open(path, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
    return key


def make_cert(key, issuer):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )


class State:
    def __init__(self, args):
        self.args = args
        self.key = load_or_make_key(args.key)
        self.cert = make_cert(self.key, args.issuer)
        self.cert_der_b64 = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        self.kid = libtrust_key_id(self.key.public_key())
        self.lock = threading.Lock()
        self.refresh_tokens = {}  # token -> user
        if args.refresh_token:
            self.refresh_tokens[args.refresh_token] = args.user
        self.stats = {"get": 0, "post_password": 0, "post_refresh": 0, "issued": 0, "denied": 0}

    def count(self, what):
        with self.lock:
            self.stats[what] += 1

    def new_refresh_token(self, user):
        token = "rt-" + secrets.token_hex(16)
        with self.lock:
            self.refresh_tokens[token] = user
        return token

    def check_refresh(self, token):
        with self.lock:
            return self.refresh_tokens.get(token)

    def sign(self, subject, service, access):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "kid": self.kid, "x5c": [self.cert_der_b64]}
        claims = {
            "iss": self.args.issuer,
            "sub": subject,
            # distribution 2.8 decodes `aud` as one string (3.x also takes a list)
            "aud": service,
            "exp": now + self.args.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(12),
            "access": access,
        }
        signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(
            json.dumps(claims, separators=(",", ":")).encode()
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        self.count("issued")
        return signing_input + "." + b64url(sig), now


def parse_scopes(scopes, allowed_actions=None):
    """`repository:name:pull,push` -> [{"type","name","actions"}]; names may contain ':' (host:port)."""
    access = []
    for scope in scopes:
        for one in scope.split(" "):
            if not one:
                continue
            typ, _, rest = one.partition(":")
            name, _, actions = rest.rpartition(":")
            if not typ or not name:
                continue
            acts = [a for a in actions.split(",") if a]
            if allowed_actions is not None:
                acts = [a for a in acts if a in allowed_actions]
            access.append({"type": typ, "name": name, "actions": acts})
    return access


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "modelsign-token-server/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("token-server: %s %s\n" % (self.address_string(), fmt % args))

    def reply(self, code, obj, extra_headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def unauthorized(self, msg):
        st: State = self.server.state
        st.count("denied")
        self.reply(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": msg}], "error": "unauthorized", "details": msg},
            [("WWW-Authenticate", 'Basic realm="modelsign-token-server"')],
        )

    def grant(self, user, service, scopes, with_refresh):
        st: State = self.server.state
        access = parse_scopes(scopes, None if user else {"pull"})
        token, now = st.sign(user or "", service or st.args.service, access)
        out = {
            "token": token,
            "access_token": token,
            "expires_in": st.args.expires_in,
            "issued_at": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if with_refresh and user:
            out["refresh_token"] = st.new_refresh_token(user)
        self.reply(200, out)

    def do_GET(self):
        st: State = self.server.state
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/stats":
            with st.lock:
                self.reply(200, dict(st.stats))
            return
        if url.path != "/token":
            self.reply(404, {"error": "not found"})
            return
        st.count("get")
        auth = self.headers.get("Authorization", "")
        user = None
        if auth.lower().startswith("basic "):
            try:
                u, _, p = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except Exception:
                self.unauthorized("malformed basic credentials")
                return
            if u != st.args.user or p != st.args.password:
                self.unauthorized("invalid username or password")
                return
            user = u
        elif auth:
            self.unauthorized("unsupported authorization scheme")
            return
        elif not st.args.anonymous_pull:
            self.unauthorized("authentication required")
            return
        offline = q.get("offline_token", ["false"])[0].lower() == "true"
        self.grant(user, q.get("service", [None])[0], q.get("scope", []), offline)

    def do_POST(self):
        st: State = self.server.state
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self.reply(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length", "0") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        f = lambda k: form.get(k, [""])[0]
        grant_type = f("grant_type")
        if grant_type == "password":
            st.count("post_password")
            if f("username") != st.args.user or f("password") != st.args.password:
                self.unauthorized("invalid username or password")
                return
            self.grant(f("username"), f("service"), form.get("scope", []), True)
        elif grant_type == "refresh_token":
            st.count("post_refresh")
            user = st.check_refresh(f("refresh_token"))
            if not user:
                self.unauthorized("invalid refresh token")
                return
            self.grant(user, f("service"), form.get("scope", []), True)
        else:
            self.reply(400, {"error": "unsupported_grant_type"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:0")
    ap.add_argument("--cert-out", required=True, help="write the signing certificate here (distribution's rootcertbundle)")
    ap.add_argument("--key", help="load the EC P-256 key from here, or generate and save it")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--issuer", default="modelsign-token-server")
    ap.add_argument("--service", default="modelsign-test-registry")
    ap.add_argument("--expires-in", type=int, default=300)
    ap.add_argument("--refresh-token", help="also accept this refresh token (an identity token) for --user")
    ap.add_argument("--anonymous-pull", action="store_true", help="grant pull to anonymous GET requests")
    args = ap.parse_args()

    state = State(args)
    with open(args.cert_out + ".tmp", "wb") as f:
        f.write(state.cert.public_bytes(serialization.Encoding.PEM))
    os.replace(args.cert_out + ".tmp", args.cert_out)

    host, _, port = args.addr.rpartition(":")
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    server.state = state
    h, p = server.server_address[:2]
    print(f"listening on {h}:{p}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
