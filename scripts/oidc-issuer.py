#!/usr/bin/env python3
"""A small OpenID Connect issuer for tests: the identity tokens Fulcio exchanges for certificates.

    oidc-issuer.py [--addr 127.0.0.1:0] [--alg RS256|ES256]

Prints "listening on http://127.0.0.1:PORT" on stdout when ready; that URL is the issuer (`iss`).

Three issuers share the port: URL (GitHub-Actions-like tokens by default), URL/email (for
Fulcio's email-type issuers: tokens default to kind=plain with email = sub) and URL/gitlab (for
Fulcio's gitlab-pipeline issuers: tokens default to kind=gitlab). Under URL/email and URL/gitlab
the endpoints are the same with that prefix.

Endpoints
  GET /.well-known/openid-configuration   the discovery document (issuer, jwks_uri, ...)
  GET /jwks                               the signing key as a JWK set
  GET /token?sub=S&aud=A[&exp_in=SECONDS][&nbf_in=SECONDS][&kind=github|plain]
             [&job_workflow_ref=OWNER/REPO/.github/workflows/W.yml@REF][&email=E][&iss=OTHER]
      a signed JWT (text/plain). kind=github (the default) gives a token shaped like the one
      GitHub Actions hands a job with `id-token: write` (sub "repo:OWNER/REPO:ref:REF",
      job_workflow_ref, repository, ref, sha, workflow, workflow_ref, event_name, run_id,
      run_attempt, runner_environment, repository_owner, ...), derived from job_workflow_ref.
      kind=plain gives iss/sub/aud/iat/nbf/exp (+ email and email_verified when email is given).
      kind=gitlab gives a token shaped like GitLab CI's `id_tokens` (sub
      "project_path:GROUP/PROJECT:ref_type:branch:ref:REF", project_path, ci_config_ref_uri,
      pipeline_source, pipeline_id, job_id, ref, ref_type, namespace_path, sha, runner_id, ...),
      derived from [&ci_config_ref_uri=gitlab.com/GROUP/PROJECT//.gitlab-ci.yml@refs/heads/REF].
      exp_in may be negative (an expired token); iss overrides the issuer (a token from a
      stranger signed with this key).

Every token is signed with one key made at start-up (RSA 2048 for RS256, P-256 for ES256).
Needs `cryptography` (the test bed venv has it).
"""

import argparse
import base64
import hashlib
import json
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(n: int, size: int = 0) -> bytes:
    return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")


class Issuer:
    def __init__(self, alg):
        self.alg = alg
        self.url = None
        if alg == "RS256":
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            nums = self.key.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "n": b64url(int_bytes(nums.n)), "e": b64url(int_bytes(nums.e))}
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())
            nums = self.key.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "x": b64url(int_bytes(nums.x, 32)), "y": b64url(int_bytes(nums.y, 32))}
        self.kid = hashlib.sha256(json.dumps(self.jwk, sort_keys=True).encode()).hexdigest()[:16]
        self.jwk.update({"kid": self.kid, "alg": alg, "use": "sig"})

    def sign(self, claims: dict) -> str:
        header = {"alg": self.alg, "typ": "JWT", "kid": self.kid}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        if self.alg == "RS256":
            sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = int_bytes(r, 32) + int_bytes(s, 32)
        return signing_input.decode() + "." + b64url(sig)

    def discovery(self, url) -> dict:
        return {
            "issuer": url,
            "jwks_uri": url + "/jwks",
            "token_endpoint": url + "/token",
            "authorization_endpoint": url + "/authorize",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.alg],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "nbf", "email", "job_workflow_ref"],
        }


def github_claims(q) -> dict:
    """Claims shaped like a GitHub Actions OIDC token, derived from job_workflow_ref."""
    jwr = q.get("job_workflow_ref", "modelsign-test/models/.github/workflows/release.yml@refs/heads/main")
    path, _, ref = jwr.partition("@")
    parts = path.split("/")
    if len(parts) < 3 or not ref:
        raise ValueError("job_workflow_ref must look like OWNER/REPO/.github/workflows/W.yml@REF")
    repo = "/".join(parts[:2])
    sha = hashlib.sha1(jwr.encode()).hexdigest()
    return {
        "sub": q.get("sub", f"repo:{repo}:ref:{ref}"),
        "ref": ref,
        "sha": sha,
        "repository": repo,
        "repository_id": "100000001",
        "repository_owner": parts[0],
        "repository_owner_id": "200000002",
        "repository_visibility": "public",
        "run_id": "3000000003",
        "run_number": "7",
        "run_attempt": "1",
        "actor": parts[0],
        "actor_id": "200000002",
        "workflow": parts[-1].rsplit(".", 1)[0],
        "workflow_ref": jwr,
        "workflow_sha": sha,
        "job_workflow_ref": jwr,
        "job_workflow_sha": sha,
        "head_ref": "",
        "base_ref": "",
        "event_name": q.get("event_name", "push"),
        "ref_type": "branch" if ref.startswith("refs/heads/") else "tag",
        "runner_environment": "github-hosted",
    }


def gitlab_claims(q) -> dict:
    """Claims shaped like a GitLab CI ID token, derived from ci_config_ref_uri."""
    uri = q.get("ci_config_ref_uri", "gitlab.com/modelsign-test/models//.gitlab-ci.yml@refs/heads/main")
    path, _, ref = uri.partition("@")
    host, _, rest = path.partition("/")
    project, _, _file = rest.partition("//")
    if not host or "/" not in project or not ref.startswith(("refs/heads/", "refs/tags/")):
        raise ValueError("ci_config_ref_uri must look like HOST/GROUP/PROJECT//FILE@refs/heads/REF")
    ref_type = "branch" if ref.startswith("refs/heads/") else "tag"
    short_ref = ref.split("/", 2)[2]
    sha = hashlib.sha1(uri.encode()).hexdigest()
    return {
        "sub": f"project_path:{project}:ref_type:{ref_type}:ref:{short_ref}",
        "namespace_id": "400000004",
        "namespace_path": project.split("/")[0],
        "project_id": "500000005",
        "project_path": project,
        "project_visibility": "public",
        "user_id": "600000006",
        "user_login": "modelsign-bot",
        "pipeline_id": "700000007",
        "pipeline_source": q.get("pipeline_source", "push"),
        "job_id": "800000008",
        "ref": short_ref,
        "ref_type": ref_type,
        "ref_path": ref,
        "ref_protected": "true",
        "runner_id": 900000009,
        "runner_environment": "gitlab-hosted",
        "sha": sha,
        "ci_config_ref_uri": uri,
        "ci_config_sha": sha,
    }


def make_handler(issuer: Issuer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("oidc-issuer: " + (fmt % args) + "\n")

        def reply(self, code, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else (json.dumps(body) if ctype == "application/json" else body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            path, iss_url, default_kind = url.path, issuer.url, "github"
            if path.startswith("/email/"):
                path, iss_url, default_kind = path[len("/email"):], issuer.url + "/email", "plain"
                q.setdefault("email", q.get("sub", "signer@example.com"))
            elif path.startswith("/gitlab/"):
                path, iss_url, default_kind = path[len("/gitlab"):], issuer.url + "/gitlab", "gitlab"
            if path == "/.well-known/openid-configuration":
                return self.reply(200, issuer.discovery(iss_url))
            if path == "/jwks":
                return self.reply(200, {"keys": [issuer.jwk]})
            if path == "/token":
                try:
                    now = int(time.time())
                    kind = q.get("kind", default_kind)
                    if kind == "github":
                        claims = github_claims(q)
                    elif kind == "gitlab":
                        claims = gitlab_claims(q)
                    else:
                        claims = {"sub": q.get("sub", "test-subject")}
                    if "sub" in q:
                        claims["sub"] = q["sub"]
                    claims.update({
                        "iss": q.get("iss", iss_url),
                        "aud": q.get("aud", "sigstore"),
                        "iat": now,
                        "nbf": now + int(q.get("nbf_in", "-5")),
                        "exp": now + int(q.get("exp_in", "600")),
                        "jti": hashlib.sha256(f"{now}{time.perf_counter_ns()}".encode()).hexdigest()[:32],
                    })
                    if "email" in q:
                        claims.update({"email": q["email"], "email_verified": True})
                except ValueError as e:
                    return self.reply(400, str(e), "text/plain")
                return self.reply(200, issuer.sign(claims), "text/plain")
            return self.reply(404, {"error": "not found"})

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--addr", default="127.0.0.1:0")
    ap.add_argument("--alg", choices=["RS256", "ES256"], default="RS256")
    args = ap.parse_args()
    host, _, port = args.addr.rpartition(":")
    issuer = Issuer(args.alg)
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), make_handler(issuer))
    h, p = server.server_address[:2]
    issuer.url = f"http://{h}:{p}"
    print(f"listening on {issuer.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
