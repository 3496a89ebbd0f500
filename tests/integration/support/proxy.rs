//! `FaultProxy`: a plain HTTP/1.1 proxy of the tests' own in front of a real registry, to
//! inject faults: corrupted, cut or stalled blob downloads, 503/429 answers with `Retry-After`,
//! dropped response headers, requests never answered, canned answers (a challenge, a garbage
//! index, an error body that never ends), blob redirects to another server and endless
//! chains of referrer pages. One request per client connection (the proxy answers `Connection: close`);
//! the request body and unaffected response bodies pass through byte for byte.
//!
//! The proxy runs on its own thread and tokio runtime, so sync and async tests can use it alike.
//! The `Host` header is passed on unchanged, so the registry's `Location` headers point back at
//! the proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What to do to matching traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Flip one byte (the middle one) in the body of `GET /v2/<name>/blobs/<digest>` answered
    /// with a `Content-Length` body (200 or 206). `digest: None` = any blob.
    CorruptBlob { digest: Option<String> },
    /// Close the connection after `after_bytes` body bytes of such a blob GET (an interrupted
    /// download: the client gets fewer bytes than `Content-Length`).
    CutBlob { digest: Option<String>, after_bytes: u64 },
    /// Answer requests whose path contains `path_contains` (and whose method is `method`, if
    /// given) with `status` (503 or 429, say) and `Retry-After: <retry_after>` if given,
    /// without asking the registry.
    Status { method: Option<String>, path_contains: String, status: u16, retry_after: Option<u32> },
    /// Remove this response header (case-insensitive), e.g. `OCI-Subject`.
    DropHeader { name: String },
    /// Read the request and send nothing back (the connection stays open until the proxy
    /// stops): a registry that accepted the connection and hangs.
    Stall { method: Option<String>, path_contains: String },
    /// Send `after_bytes` body bytes of such a blob GET, then nothing more, without closing.
    StallBlob { digest: Option<String>, after_bytes: u64 },
    /// Answer matching requests with this status, headers and body, without asking the
    /// registry. `{self}` in a header value or the body becomes the proxy's `127.0.0.1:PORT`.
    /// With `stall_body`, only the first 8 body bytes are sent, then nothing.
    Canned {
        method: Option<String>,
        path_contains: String,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        stall_body: bool,
    },
    /// Answer blob GETs with `307` to `<to><same path>` (another server, say).
    RedirectBlob { to: String },
    /// Answer `GET …/referrers/…` with pages of `per_page` made-up referrer descriptors, each
    /// page with a `Link` to the next one, forever.
    ReferrerFlood { per_page: usize },
    /// Close both connections once `after_bytes` bytes of upload request bodies (`PATCH` or
    /// `PUT` to `/blobs/uploads/`) have passed, counted across requests from the start or
    /// from the previous cut: an upload cut by the network, in the middle of a request.
    CutUpload { after_bytes: u64 },
}

/// A fault and how many more times it applies (`None` = every time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub times: Option<usize>,
}

impl Fault {
    /// Corrupt every download of this blob (`"sha256:…"`).
    pub fn corrupt_blob(digest: &str) -> Fault {
        Fault { kind: FaultKind::CorruptBlob { digest: Some(digest.to_string()) }, times: None }
    }

    /// Corrupt every blob download.
    pub fn corrupt_any_blob() -> Fault {
        Fault { kind: FaultKind::CorruptBlob { digest: None }, times: None }
    }

    /// Cut every download of this blob after `after_bytes` body bytes.
    pub fn cut_blob(digest: &str, after_bytes: u64) -> Fault {
        Fault { kind: FaultKind::CutBlob { digest: Some(digest.to_string()), after_bytes }, times: None }
    }

    /// Cut every blob download after `after_bytes` body bytes.
    pub fn cut_any_blob(after_bytes: u64) -> Fault {
        Fault { kind: FaultKind::CutBlob { digest: None, after_bytes }, times: None }
    }

    /// The first `count` requests whose path contains `path_contains` get
    /// `503 Service Unavailable` with `Retry-After: 1`.
    pub fn unavailable(path_contains: &str, count: usize) -> Fault {
        Fault::status(path_contains, 503, Some(1)).times(count)
    }

    /// The first `count` requests whose path contains `path_contains` get
    /// `429 Too Many Requests` with `Retry-After: 1`.
    pub fn too_many_requests(path_contains: &str, count: usize) -> Fault {
        Fault::status(path_contains, 429, Some(1)).times(count)
    }

    /// Every request whose path contains `path_contains` gets `status` (limit it with `.times`).
    pub fn status(path_contains: &str, status: u16, retry_after: Option<u32>) -> Fault {
        Fault {
            kind: FaultKind::Status { method: None, path_contains: path_contains.to_string(), status, retry_after },
            times: None,
        }
    }

    /// Cut the upload once `after_bytes` bytes of upload bodies have passed (once; see
    /// [`FaultKind::CutUpload`]).
    pub fn cut_upload(after_bytes: u64) -> Fault {
        Fault { kind: FaultKind::CutUpload { after_bytes }, times: Some(1) }
    }

    /// Remove a response header from every response, e.g. `OCI-Subject`.
    pub fn drop_header(name: &str) -> Fault {
        Fault { kind: FaultKind::DropHeader { name: name.to_string() }, times: None }
    }

    /// Requests whose path contains `path_contains` get no answer at all.
    pub fn stall(path_contains: &str) -> Fault {
        Fault { kind: FaultKind::Stall { method: None, path_contains: path_contains.to_string() }, times: None }
    }

    /// Every blob download stops sending after `after_bytes` body bytes (and stays open).
    pub fn stall_any_blob(after_bytes: u64) -> Fault {
        Fault { kind: FaultKind::StallBlob { digest: None, after_bytes }, times: None }
    }

    /// Requests whose path contains `path_contains` get this canned answer.
    pub fn canned(path_contains: &str, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Fault {
        Fault {
            kind: FaultKind::Canned {
                method: None,
                path_contains: path_contains.to_string(),
                status,
                headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                body: body.to_vec(),
                stall_body: false,
            },
            times: None,
        }
    }

    /// A [`FaultKind::Canned`] answer whose body stops after 8 bytes (and stays open).
    pub fn stalled_body(mut self) -> Fault {
        if let FaultKind::Canned { stall_body, .. } = &mut self.kind {
            *stall_body = true;
        }
        self
    }

    /// Every blob GET is redirected to `to` (`http://HOST:PORT`) with the same path.
    pub fn redirect_blobs(to: &str) -> Fault {
        Fault { kind: FaultKind::RedirectBlob { to: to.trim_end_matches('/').to_string() }, times: None }
    }

    /// The referrers API answers an endless chain of pages of `per_page` entries.
    pub fn referrer_flood(per_page: usize) -> Fault {
        Fault { kind: FaultKind::ReferrerFlood { per_page }, times: None }
    }

    /// Applies only to requests with this method (for [`FaultKind::Status`],
    /// [`FaultKind::Stall`] and [`FaultKind::Canned`]).
    pub fn method(mut self, method: &str) -> Fault {
        if let FaultKind::Status { method: m, .. }
        | FaultKind::Stall { method: m, .. }
        | FaultKind::Canned { method: m, .. } = &mut self.kind
        {
            *m = Some(method.to_ascii_uppercase());
        }
        self
    }

    /// Applies to the next `n` matching requests only.
    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The request's headers, as the client sent them (before the proxy's `Connection: close`).
    pub headers: Vec<(String, String)>,
    /// The status the client got (0 if the registry did not answer).
    pub status: u16,
    /// The faults applied to it, by name (`"corrupt"`, `"cut"`, `"status"`, `"drop-header"`,
    /// `"stall"`, `"canned"`, `"redirect"`, `"flood"`, `"cut-upload"`).
    pub faults: Vec<&'static str>,
}

impl ProxiedRequest {
    /// The value of a request header (case-insensitive name), e.g. `Range`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Where a `Range: bytes=N-…` request starts; `None` without one.
    pub fn range_start(&self) -> Option<u64> {
        self.header("Range")?.strip_prefix("bytes=")?.split('-').next()?.parse().ok()
    }
}

#[derive(Default)]
struct State {
    faults: Vec<Fault>,
    requests: Vec<ProxiedRequest>,
    /// Upload body bytes passed on, in all.
    upload_bytes: u64,
    /// Upload body bytes passed on since the last cut (what `CutUpload` counts).
    upload_since_cut: u64,
}

impl State {
    /// Lets `n` more upload body bytes pass: returns how many may go before a cut (`Some`:
    /// cut after that many) or `None` for all of them, and counts what passes.
    fn pass_upload(&mut self, n: u64) -> Option<u64> {
        let since = self.upload_since_cut;
        let fault = self.faults.iter_mut().find(|f| {
            f.times != Some(0) && matches!(f.kind, FaultKind::CutUpload { after_bytes } if since + n >= after_bytes)
        });
        match fault {
            Some(fault) => {
                let FaultKind::CutUpload { after_bytes } = fault.kind else { unreachable!() };
                if let Some(t) = &mut fault.times {
                    *t -= 1;
                }
                let keep = after_bytes - since;
                self.upload_bytes += keep;
                self.upload_since_cut = 0;
                Some(keep)
            }
            None => {
                self.upload_bytes += n;
                self.upload_since_cut += n;
                None
            }
        }
    }
}

type Shared = Arc<Mutex<State>>;

/// A fault-injecting HTTP proxy on `127.0.0.1:<port>` (or another local address); stops on drop.
pub struct FaultProxy {
    addr: String,
    upstream: String,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// A pass-through proxy to `upstream` ("127.0.0.1:PORT").
    pub fn start(upstream: &str) -> FaultProxy {
        FaultProxy::with_faults(upstream, Vec::new())
    }

    pub fn with_faults(upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        FaultProxy::with_faults_on("127.0.0.1", upstream, faults)
    }

    /// A proxy listening on `ip` (a non-loopback address of this machine, say).
    pub fn with_faults_on(ip: &str, upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        let listener = std::net::TcpListener::bind(format!("{ip}:0")).expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let state: Shared = Arc::new(Mutex::new(State { faults, ..State::default() }));
        let (tx, rx) = oneshot::channel();
        let upstream_owned = upstream.to_string();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    let upstream: SocketAddr = upstream_owned.parse().expect("upstream addr");
                    let accept = async {
                        loop {
                            let Ok((client, _)) = listener.accept().await else { continue };
                            let state = thread_state.clone();
                            tokio::spawn(async move {
                                let _ = handle(client, upstream, state).await;
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = rx => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })
            .expect("proxy thread");
        FaultProxy { addr, upstream: upstream.to_string(), state, shutdown: Some(tx), thread: Some(thread) }
    }

    /// `127.0.0.1:PORT` — give this to clients instead of the registry's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    pub fn add_fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Every request seen so far, in the order their answers began.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The GETs of the blob `digest` (whole or ranged), in order.
    pub fn blob_gets(&self, digest: &str) -> Vec<ProxiedRequest> {
        let suffix = format!("/blobs/{digest}");
        self.requests().into_iter().filter(|r| r.method == "GET" && r.path.ends_with(&suffix)).collect()
    }

    /// How many requests with `method` had a path containing `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.contains(path_contains))
            .count()
    }

    /// Bytes of upload request bodies (`PATCH`/`PUT` to `/blobs/uploads/`) passed on to the
    /// registry so far.
    pub fn upload_bytes(&self) -> u64 {
        self.state.lock().unwrap().upload_bytes
    }

    /// How many requests had the named fault applied (`"corrupt"`, `"cut"`, `"status"`, `"drop-header"`).
    pub fn faults_applied(&self, name: &str) -> usize {
        self.requests().iter().filter(|r| r.faults.contains(&name)).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Head {
    /// The first line, without CRLF.
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Sets `Connection: close` and drops hop-by-hop keep-alive headers.
    fn force_close(&mut self) {
        self.headers.retain(|(k, _)| {
            !["connection", "keep-alive", "proxy-connection"].iter().any(|h| k.eq_ignore_ascii_case(h))
        });
        self.headers.push(("Connection".into(), "close".into()));
    }
}

/// Reads a message head; returns it and the bytes read past it. `None` on EOF before a head.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<(Head, Vec<u8>)>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let rest = buf[end + 4..].to_vec();
            let mut lines = text.split("\r\n");
            let start = lines.next().unwrap_or_default().to_string();
            let headers = lines
                .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
                .collect();
            return Ok(Some((Head { start, headers }, rest)));
        }
        if buf.len() > 256 * 1024 {
            return Err(std::io::Error::other("message head too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The digest in `/v2/<name>/blobs/<digest>`, if the path is a blob path.
fn blob_digest(path: &str) -> Option<&str> {
    let path = path.split('?').next()?;
    let (_, digest) = path.strip_prefix("/v2/")?.rsplit_once("/blobs/")?;
    if digest.contains('/') || digest == "uploads" || digest.is_empty() { None } else { Some(digest) }
}

/// Takes the first fault that matches and has uses left, counting one use.
fn take_fault(state: &Shared, pred: impl Fn(&FaultKind) -> bool) -> Option<FaultKind> {
    let mut st = state.lock().unwrap();
    let fault = st.faults.iter_mut().find(|f| f.times != Some(0) && pred(&f.kind))?;
    if let Some(n) = &mut fault.times {
        *n -= 1;
    }
    Some(fault.kind.clone())
}

fn record(
    state: &Shared,
    headers: &[(String, String)],
    method: &str,
    path: &str,
    status: u16,
    faults: Vec<&'static str>,
) {
    state.lock().unwrap().requests.push(ProxiedRequest {
        method: method.to_string(),
        path: path.to_string(),
        headers: headers.to_vec(),
        status,
        faults,
    });
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, state: Shared) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let mut buf = Vec::new();
    let Some((mut req, req_rest)) = read_head(&mut client, &mut buf).await? else { return Ok(()) };
    let mut parts = req.start.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers = req.headers.clone();
    let matches = |m: &Option<String>, path_contains: &str| {
        path.contains(path_contains) && m.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(&method))
    };

    // (e) no answer at all
    if take_fault(&state, |k| matches!(k, FaultKind::Stall { method: m, path_contains } if matches(m, path_contains)))
        .is_some()
    {
        record(&state, &headers, &method, &path, 0, vec!["stall"]);
        return hold_open(client).await;
    }

    // (f) canned answers, redirects and referrer floods
    let own_addr = client.local_addr().map(|a| a.to_string()).unwrap_or_default();
    if let Some(FaultKind::Canned { status, headers: extra, body, stall_body, .. }) = take_fault(
        &state,
        |k| matches!(k, FaultKind::Canned { method: m, path_contains, .. } if matches(m, path_contains)),
    ) {
        record(&state, &headers, &method, &path, status, vec!["canned"]);
        // `{self}` is replaced in text bodies; binary ones (a DER answer) pass as they are.
        let body = match String::from_utf8(body) {
            Ok(text) => text.replace("{self}", &own_addr).into_bytes(),
            Err(binary) => binary.into_bytes(),
        };
        let mut head =
            format!("HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n", reason(status), body.len());
        for (k, v) in &extra {
            head.push_str(&format!("{k}: {}\r\n", v.replace("{self}", &own_addr)));
        }
        head.push_str("\r\n");
        client.write_all(head.as_bytes()).await?;
        if stall_body {
            client.write_all(&body[..body.len().min(8)]).await?;
            client.flush().await?;
            return hold_open(client).await;
        }
        client.write_all(&body).await?;
        client.flush().await?;
        return finish(client).await;
    }
    if method == "GET"
        && blob_digest(&path).is_some()
        && let Some(FaultKind::RedirectBlob { to }) =
            take_fault(&state, |k| matches!(k, FaultKind::RedirectBlob { .. }))
    {
        record(&state, &headers, &method, &path, 307, vec!["redirect"]);
        let head = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        client.write_all(head.as_bytes()).await?;
        client.flush().await?;
        return finish(client).await;
    }
    if method == "GET"
        && path.contains("/referrers/")
        && let Some(FaultKind::ReferrerFlood { per_page }) =
            take_fault(&state, |k| matches!(k, FaultKind::ReferrerFlood { .. }))
    {
        record(&state, &headers, &method, &path, 200, vec!["flood"]);
        let (base, page) = match path.split_once("?page=") {
            Some((b, n)) => (b.to_string(), n.parse::<u64>().unwrap_or(0)),
            None => (path.clone(), 0),
        };
        let entries: Vec<String> = (0..per_page as u64)
            .map(|i| {
                let digest = crate::support::sha256_digest(format!("{page}/{i}").as_bytes());
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":500,"artifactType":"application/vnd.example.flood"}}"#
                )
            })
            .collect();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            entries.join(",")
        );
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\nLink: <{base}?page={}>; rel=\"next\"\r\nConnection: close\r\n\r\n",
            body.len(),
            page + 1
        );
        client.write_all(head.as_bytes()).await?;
        client.write_all(body.as_bytes()).await?;
        client.flush().await?;
        return finish(client).await;
    }

    // (c) canned error answers
    if let Some(FaultKind::Status { status, retry_after, .. }) = take_fault(&state, |k| match k {
        FaultKind::Status { method: m, path_contains, .. } => {
            path.contains(path_contains.as_str()) && m.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(&method))
        }
        _ => false,
    }) {
        record(&state, &headers, &method, &path, status, vec!["status"]);
        let body =
            format!("{{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":\"injected by FaultProxy: {status}\"}}]}}");
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            reason(status),
            body.len()
        );
        if let Some(secs) = retry_after {
            head.push_str(&format!("Retry-After: {secs}\r\n"));
        }
        head.push_str("\r\n");
        client.write_all(head.as_bytes()).await?;
        client.write_all(body.as_bytes()).await?;
        client.flush().await?;
        let _ = client.shutdown().await;
        // Drain what the client still sends (a request body), so closing does not reset the
        // connection before the client has read the answer.
        let mut sink = [0u8; 16384];
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        return Ok(());
    }

    let mut server = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            record(&state, &headers, &method, &path, 0, vec![]);
            let msg = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string();
            let _ = client.write_all(msg.as_bytes()).await;
            return Err(e);
        }
    };
    let _ = server.set_nodelay(true);
    req.force_close();
    server.write_all(&req.encode()).await?;
    let is_upload = (method == "PATCH" || method == "PUT") && path.contains("/blobs/uploads/");

    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    // Request body (whatever framing): client -> registry until the client stops or we are done.
    // Upload bodies are counted, and cut when a CutUpload fault says so.
    let (cut_tx, cut_rx) = oneshot::channel::<()>();
    let upload_state = state.clone();
    let upload = tokio::spawn(async move {
        let mut data = req_rest;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if !data.is_empty() {
                let cut = if is_upload { upload_state.lock().unwrap().pass_upload(data.len() as u64) } else { None };
                if let Some(keep) = cut {
                    let _ = server_w.write_all(&data[..keep as usize]).await;
                    let _ = cut_tx.send(());
                    return;
                }
                if server_w.write_all(&data).await.is_err() {
                    break;
                }
            }
            match client_r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => data = chunk[..n].to_vec(),
            }
        }
        let _ = server_w.shutdown().await;
    });

    let result = async {
        let mut buf = Vec::new();
        let mut faults_applied = Vec::new();
        // Interim 1xx answers (100 Continue) pass through.
        let (mut resp, rest) = loop {
            let Some((resp, rest)) = read_head(&mut server_r, &mut buf).await? else {
                record(&state, &headers, &method, &path, 0, vec![]);
                return Ok(());
            };
            if resp.start.split(' ').nth(1).is_some_and(|s| s.starts_with('1')) && !resp.start.contains(" 101 ") {
                client_w.write_all(&resp.encode()).await?;
                buf = rest;
                continue;
            }
            break (resp, rest);
        };
        let status: u16 = resp.start.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);

        // (d) dropped headers: every matching DropHeader fault applies.
        while let Some(FaultKind::DropHeader { name }) =
            take_fault(&state, |k| matches!(k, FaultKind::DropHeader { name } if resp.get(name).is_some()))
        {
            resp.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
            faults_applied.push("drop-header");
        }

        // (a)/(b) blob body faults, on Content-Length bodies of blob GETs only.
        let content_length: Option<u64> = resp.get("Content-Length").and_then(|v| v.parse().ok());
        let chunked = resp.get("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let mut body_fault = None;
        if method == "GET"
            && (status == 200 || status == 206)
            && content_length.is_some()
            && !chunked
            && let Some(digest) = blob_digest(&path)
        {
            body_fault = take_fault(&state, |k| match k {
                FaultKind::CorruptBlob { digest: d }
                | FaultKind::CutBlob { digest: d, .. }
                | FaultKind::StallBlob { digest: d, .. } => d.as_deref().is_none_or(|d| d == digest),
                _ => false,
            });
        }
        match &body_fault {
            Some(FaultKind::CorruptBlob { .. }) => faults_applied.push("corrupt"),
            Some(FaultKind::CutBlob { .. }) => faults_applied.push("cut"),
            Some(FaultKind::StallBlob { .. }) => faults_applied.push("stall"),
            _ => {}
        }
        record(&state, &headers, &method, &path, status, faults_applied);

        resp.force_close();
        client_w.write_all(&resp.encode()).await?;

        let flip_at = match (&body_fault, content_length) {
            (Some(FaultKind::CorruptBlob { .. }), Some(len)) if len > 0 => Some(len / 2),
            _ => None,
        };
        let (cut_at, stall) = match &body_fault {
            Some(FaultKind::CutBlob { after_bytes, .. }) => (Some(*after_bytes), false),
            Some(FaultKind::StallBlob { after_bytes, .. }) => (Some(*after_bytes), true),
            _ => (None, false),
        };
        // Body: registry -> client until the registry closes (we asked it to).
        let mut pos: u64 = 0;
        let mut pending = rest;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let mut data = if pending.is_empty() {
                let n = server_r.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                chunk[..n].to_vec()
            } else {
                std::mem::take(&mut pending)
            };
            if let Some(at) = flip_at
                && at >= pos
                && at < pos + data.len() as u64
            {
                data[(at - pos) as usize] ^= 0x01;
            }
            if let Some(cut) = cut_at
                && pos + data.len() as u64 >= cut
            {
                let keep = (cut - pos) as usize;
                client_w.write_all(&data[..keep]).await?;
                client_w.flush().await?;
                if stall {
                    // Nothing more, and no end either.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                // An abrupt end: the client has fewer bytes than Content-Length.
                return Ok(());
            }
            client_w.write_all(&data).await?;
            pos += data.len() as u64;
            if content_length.is_some_and(|len| pos >= len) && !chunked {
                break;
            }
        }
        client_w.flush().await?;
        let _ = client_w.shutdown().await;
        Ok::<(), std::io::Error>(())
    };
    let result = tokio::select! {
        result = result => result,
        Ok(()) = cut_rx => {
            // Both connections close mid-request: the client sees its upload cut.
            record(&state, &headers, &method, &path, 0, vec!["cut-upload"]);
            Ok(())
        }
    };
    upload.abort();
    result
}

/// Keeps a connection open without sending anything until the client goes away (or the
/// proxy stops).
async fn hold_open(mut client: TcpStream) -> std::io::Result<()> {
    let mut sink = [0u8; 16384];
    loop {
        match client.read(&mut sink).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}

/// Ends an answer the proxy made itself: closes the sending side and drains what the client
/// still sends, so closing does not reset the connection before the answer is read.
async fn finish(mut client: TcpStream) -> std::io::Result<()> {
    let _ = client.shutdown().await;
    let mut sink = [0u8; 16384];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = client.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        200 => "OK",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        _ => "Injected",
    }
}

#[cfg(test)]
mod tests {
    use super::blob_digest;

    #[test]
    fn finds_blob_digests() {
        assert_eq!(blob_digest("/v2/a/b/blobs/sha256:abc"), Some("sha256:abc"));
        assert_eq!(blob_digest("/v2/a/blobs/sha256:abc?x=1"), Some("sha256:abc"));
        assert_eq!(blob_digest("/v2/a/blobs/uploads/"), None);
        assert_eq!(blob_digest("/v2/a/blobs/uploads/123"), None);
        assert_eq!(blob_digest("/v2/a/manifests/v1"), None);
    }
}
