#!/usr/bin/env bash
# Benchmarks modelsign against its peers in ONE run, on the same local registry (distribution 2.8
# on loopback, filesystem storage) and the same generated model, and prints a Markdown table
# (also written to ${BENCH_OUT:-target/bench.md}) that can be pasted into the README.
#
#   scripts/bench.sh                          # 1 GiB model, median of 3 runs
#   BENCH_MIB=64 BENCH_RUNS=1 scripts/bench.sh  # quick check
#
# Knobs:
#   BENCH_MIB        model size in MiB: two weight files of BENCH_MIB/2 each + small files (1024)
#   BENCH_RUNS       repetitions of every timing; the table shows the median (3)
#   BENCH_SIGN_4X    also push a 4×BENCH_MIB model once and time `sign REF` on it (1; 0 skips)
#   BENCH_FILES      files of 32 KiB in the many-files model pushed and pulled against oras (2000; 0 skips)
#   BENCH_RESUME_MIB size of the blob whose upload is cut at 60 % (256; 0 skips), through a cutting
#                    proxy in front of cue-labs' registry (which reports what it holds) and distribution
#                    (which cancels an upload cut inside a PATCH: what went before the cut is lost)
#   BENCH_BIG        1: also the big-model rows: four files of BENCH_BIG_GIB/4 (16 GiB in all),
#                    push, pull, sign REF, sign DIR with a warm digest cache, verify one component,
#                    peak RSS, against oras and model_signing. Needs twice the model on disk plus
#                    6 GB (40 GB at 16 GiB), checked before anything runs: the registry's copy
#                    stays, and the source folder is deleted once pushes and signs are done, before
#                    the pulls (each pulled copy is deleted before the next; the registry's blobs
#                    are read into the page cache before each pull, so both pullers start alike)
#   BENCH_BIG_GIB    size of the big model in GiB (16); BENCH_BIG_MIB (each of the four files, in
#                    MiB) overrides it
#   BENCH_BIG_RUNS   repetitions of each big-model timing (1)
#   BENCH_CUSTODY    issue 6: verify one 1 MiB component of the model under a 5-rule policy with 6
#                    signatures and attestations attached (1; 0 skips)
#   BENCH_UNPACK     issue 11: pull (unpack) a tar and a tar+gzip layer of BENCH_MIB/2 vs `tar -x`
#                    of the same archive (1; 0 skips); BENCH_UNPACK_GZIP_LEVEL: gzip level (6)
#   BENCH_OUT        where the table goes (default <repo>/target/bench.md; a relative path is
#                    taken from the current directory)
#   BENCH_QUIET_WAIT wait up to this many seconds for a 10-second window in which other work used
#                    at most 5% of the machine's CPU before starting (0: do not wait, only report)
#
# What is measured (issues 2 and 3, "Done when"):
#   push to a fresh repository (modelsign, oras, parallel curl POST+PUT of pre-hashed blobs),
#   re-push when every blob exists, pull of the whole model into an empty folder (modelsign, oras,
#   parallel curl GET), peak RSS of push and pull, `sign PATH` vs `model_signing sign key`,
#   `sign REF` (from the manifest) at BENCH_MIB and 4×BENCH_MIB, and `verify REF --component`
#   of a 1 MiB file vs `oras pull` + `model_signing verify key` of the whole model, with the bytes
#   modelsign fetched counted by a small TCP proxy.
# Issue 8 (delta updates, big models): re-push of the unchanged model with the digest cache warm
#   (vs oras's re-push), `sign DIR` after one 1 MiB file changed (vs a fresh `sign DIR --no-cache`),
#   push and pull of BENCH_FILES files of 32 KiB (vs oras), `inspect` and `verify --component`
#   of that many-layer model, the share of a blob sent again when its upload is cut at 60 %, the
#   1 GiB pull's ratio in every run (not only the median), and with BENCH_BIG=1 the 16 GiB rows.
#   "Fresh" pushes and signs pass --no-cache, so they hash every byte as before.
# Issue 6 (chain of custody): `verify --policy --component` of a 1 MiB file of the model under a
#   five-rule policy, with six signatures and attestations by four parties attached: time, and
#   bytes fetched through the counting proxy (over component + 64 KiB: NOT MET, exit 1).
# Issue 11 (archive layers): `pull` of a tar+gzip and of a tar layer (unpacked) vs `tar -x` of
#   the same archive file: from the registry (over loopback HTTP, the registry's CPU on the
#   same cores) and from an OCI layout folder (a local blob file, as tar reads one).
#
# Method: every command runs under /usr/bin/time (peak RSS, user and system CPU); wall time is
# taken around it with nanosecond clock reads. The model's files are in the page cache (just
# written) and so are the registry's blobs. Before the timings, one untimed push stores every blob
# in the registry, so every "fresh repository" push (modelsign, oras and curl alike) uploads every
# byte to a repository that has none of them, while the registry's content store already holds
# them (distribution then drops the upload instead of moving it: no disk writes count against
# anyone). The tools alternate within each run and take turns going first; `sync` runs before
# each timed command. Each timing also records the registry's CPU and the CPU that everything
# else on the machine used meanwhile, so a disturbed run can be told apart. Pulls are timed
# until the command exits: modelsign writes files of 16 MiB and more with O_DIRECT, so its
# time includes writing them to disk; oras and curl write into the page cache, and their
# writeback happens after (the next command's `sync`, untimed).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLER_PWD="$PWD"
cd "$REPO"

BENCH_MIB="${BENCH_MIB:-1024}"
BENCH_RUNS="${BENCH_RUNS:-3}"
BENCH_SIGN_4X="${BENCH_SIGN_4X:-1}"
BENCH_QUIET_WAIT="${BENCH_QUIET_WAIT:-0}"
BENCH_FILES="${BENCH_FILES:-2000}"
BENCH_RESUME_MIB="${BENCH_RESUME_MIB:-256}"
BENCH_BIG="${BENCH_BIG:-0}"
BENCH_CUSTODY="${BENCH_CUSTODY:-1}"
BENCH_UNPACK="${BENCH_UNPACK:-1}"
BENCH_UNPACK_GZIP_LEVEL="${BENCH_UNPACK_GZIP_LEVEL:-6}"
BENCH_BIG_GIB="${BENCH_BIG_GIB:-16}"
[[ "$BENCH_BIG_GIB" =~ ^[0-9]+$ && "$BENCH_BIG_GIB" -ge 1 ]] || { echo "bench: BENCH_BIG_GIB must be an integer >= 1" >&2; exit 2; }
BENCH_BIG_MIB="${BENCH_BIG_MIB:-$((BENCH_BIG_GIB * 256))}"
BENCH_BIG_RUNS="${BENCH_BIG_RUNS:-1}"
if [[ -n "${BENCH_OUT:-}" ]]; then
  case "$BENCH_OUT" in /*) OUT="$BENCH_OUT" ;; *) OUT="$CALLER_PWD/$BENCH_OUT" ;; esac
else
  OUT="$REPO/target/bench.md"
fi
[[ "$BENCH_MIB" =~ ^[0-9]+$ && "$BENCH_MIB" -ge 2 ]] || { echo "bench: BENCH_MIB must be an integer >= 2" >&2; exit 2; }
[[ "$BENCH_RUNS" =~ ^[0-9]+$ && "$BENCH_RUNS" -ge 1 ]] || { echo "bench: BENCH_RUNS must be an integer >= 1" >&2; exit 2; }
for knob in BENCH_FILES BENCH_RESUME_MIB BENCH_BIG_MIB BENCH_BIG_RUNS BENCH_CUSTODY BENCH_UNPACK BENCH_UNPACK_GZIP_LEVEL; do
  [[ "${!knob}" =~ ^[0-9]+$ ]] || { echo "bench: $knob must be a non-negative integer" >&2; exit 2; }
done

log() { echo "bench: $*" >&2; }
die() { echo "bench: ERROR: $*" >&2; exit 1; }

# The big model's disk: the registry's copy plus the source folder (or one pulled copy), and
# 6 GB for the registry's other blobs and the rest. Checked before anything runs, and again
# before the big model is written.
big_space_check() {
  local need avail
  need=$((2 * 4 * BENCH_BIG_MIB * 1048576 + 6000000000))
  avail=$(($(df -Pk "$1" | awk 'NR==2{print $4}') * 1024))
  ((avail >= need)) || die "BENCH_BIG=1 with a $((4 * BENCH_BIG_MIB / 1024)) GiB model needs $((need / 1000000000)) GB free in $1 (the registry's copy, the source folder or a pulled copy, 6 GB for the rest); $((avail / 1000000000)) GB free. Free some space, or set BENCH_BIG_GIB lower"
}
if [[ "$BENCH_BIG" == 1 ]]; then
  big_space_check "${TMPDIR:-/tmp}"
fi

# ---------------------------------------------------------------------------------------------
# Tools: modelsign (release build), the test bed's peers, docker-registry, curl, /usr/bin/time.
# ---------------------------------------------------------------------------------------------
log "cargo build --release"
cargo build --release --quiet
MS="$REPO/target/release/modelsign"
[[ -x "$MS" ]] || die "no $MS after cargo build --release"

TB="${MODELSIGN_TESTBED:-$REPO/.testbed}"
peers_ok() {
  [[ -f "$TB/env" ]] || return 1
  # shellcheck disable=SC1090,SC1091
  . "$TB/env"
  local t
  for t in oras cosign model_signing docker-registry curl python3 /usr/bin/time; do
    command -v "$t" >/dev/null 2>&1 || return 1
  done
}
if ! peers_ok; then
  log "peers missing: running scripts/testbed.sh"
  "$REPO/scripts/testbed.sh"
  peers_ok || die "the test bed did not provide oras, cosign, model_signing, docker-registry, curl, python3 and /usr/bin/time"
fi

# ---------------------------------------------------------------------------------------------
# Work folder, cleanup
# ---------------------------------------------------------------------------------------------
W="$(mktemp -d "${TMPDIR:-/tmp}/modelsign-bench.XXXXXX")"
REGISTRY_PID=""
PROXY_PID=""
cleanup() {
  local rc=$? pid
  set +e
  for pid in $PROXY_PID $REGISTRY_PID; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  for pid in ${EXTRA_PIDS:-}; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$W/home" "$W/docker" "$W/res" "$W/tmp"
# Never the machine's credentials; a private HOME for oras and model_signing too.
export HOME="$W/home" DOCKER_CONFIG="$W/docker" TMPDIR="$W/tmp"
CMDLOG="$W/commands.log"

# ---------------------------------------------------------------------------------------------
# Load: wait for quiet if asked, and report what else runs.
# ---------------------------------------------------------------------------------------------
# busy_percent SECONDS: the share of the machine's CPU that was busy during the next SECONDS
busy_percent() {
  local a b
  a="$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat)"
  sleep "$1"
  b="$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat)"
  awk -v a="$a" -v b="$b" 'BEGIN{split(a, x, " "); split(b, y, " "); d = y[2] - x[2]; p = 0; if (d > 0) p = 100 * (y[1] - x[1]) / d; printf "%.0f", p}'
}
if ((BENCH_QUIET_WAIT > 0)); then
  deadline=$((SECONDS + BENCH_QUIET_WAIT))
  while busy="$(busy_percent 10)" && ((busy > 5 && SECONDS < deadline)); do
    log "waiting for quiet: the machine was ${busy}% busy over the last 10 s"
  done
fi
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average at start: $LOAD_START ($(nproc) cores)"
IDLE_CHECK="$(busy_percent 2)%"
log "CPU used by others just before the start (2 s): $IDLE_CHECK of the machine"

# ---------------------------------------------------------------------------------------------
# The model: two weight files of BENCH_MIB/2 MiB (pseudo-random), config.json, tokenizer.json,
# tokenizer.model (1 MiB: the component of the verify check) and README.md.
# ---------------------------------------------------------------------------------------------
MODEL="$W/model"
mkdir -p "$MODEL"
HALF_KIB=$((BENCH_MIB * 512))
COMPONENT="tokenizer.model"
W1="model-00001-of-00002.safetensors"
W2="model-00002-of-00002.safetensors"
log "generating a ${BENCH_MIB} MiB model in $MODEL"
openssl rand -out "$MODEL/$W1" $((HALF_KIB * 1024)) &
p1=$!
openssl rand -out "$MODEL/$W2" $((HALF_KIB * 1024)) &
p2=$!
wait "$p1" && wait "$p2" || die "openssl rand failed"
openssl rand -out "$MODEL/$COMPONENT" 1048576
printf '{"architectures":["LlamaForCausalLM"],"model_type":"llama","torch_dtype":"bfloat16","hidden_size":4096}\n' >"$MODEL/config.json"
python3 -c 'import json,sys; json.dump({"version":"1.0","model":{"type":"BPE","vocab":{f"tok{i}":i for i in range(2000)}}},sys.stdout)' >"$MODEL/tokenizer.json"
printf '# bench-model\n\nA generated model for scripts/bench.sh.\n' >"$MODEL/README.md"
FILES=("$W1" "$W2" "$COMPONENT" config.json tokenizer.json README.md)
declare -A DIG
for f in "${FILES[@]}"; do DIG[$f]="$(sha256sum "$MODEL/$f" | cut -d' ' -f1)"; done
MODEL_BYTES="$(du -cb "${FILES[@]/#/$MODEL/}" | tail -1 | cut -f1)"
COMPONENT_BYTES="$(stat -c %s "$MODEL/$COMPONENT")"

# oras push arguments: file:mediatype, relative to the model folder (so titles are plain names).
ORAS_FILES=(
  "$W1:application/vnd.cncf.model.weight.v1.raw"
  "$W2:application/vnd.cncf.model.weight.v1.raw"
  "$COMPONENT:application/vnd.cncf.model.weight.config.v1.raw"
  "config.json:application/vnd.cncf.model.weight.config.v1.raw"
  "tokenizer.json:application/vnd.cncf.model.weight.config.v1.raw"
  "README.md:application/vnd.cncf.model.doc.v1.raw"
)

# ---------------------------------------------------------------------------------------------
# Registry: distribution 2.8, filesystem storage in the work folder, port from its log.
# ---------------------------------------------------------------------------------------------
mkdir -p "$W/registry"
cat >"$W/registry/cfg.yml" <<YAML
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/registry/data
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
YAML
(cd "$W/registry" && exec docker-registry serve cfg.yml) >"$W/registry/log" 2>&1 &
REGISTRY_PID=$!
HOSTPORT=""
for _ in $(seq 200); do
  HOSTPORT="$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$W/registry/log" | head -1 | sed 's/^listening on //' || true)"
  [[ -n "$HOSTPORT" ]] && break
  kill -0 "$REGISTRY_PID" 2>/dev/null || { cat "$W/registry/log" >&2; die "docker-registry exited"; }
  sleep 0.05
done
[[ -n "$HOSTPORT" ]] || { cat "$W/registry/log" >&2; die "docker-registry did not say where it listens"; }
for _ in $(seq 100); do curl -fsS -o /dev/null "http://$HOSTPORT/v2/" && break; sleep 0.05; done
REG="http://$HOSTPORT"
log "registry: distribution $(docker-registry --version | awk '{print $3}') at $HOSTPORT"

# ---------------------------------------------------------------------------------------------
# Helper scripts for the curl limit (files, so /usr/bin/time can run them).
# ---------------------------------------------------------------------------------------------
# curl-push.sh REG REPO DIR FILE=DIGEST... : POST an upload session, then PUT ?digest= the bytes
cat >"$W/curl-push.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
reg=$1 repo=$2 dir=$3; shift 3
one() {
  local f=${1%%=*} d=${1#*=} loc
  loc=$(curl -sS -f -X POST -D - -o /dev/null "$reg/v2/$repo/blobs/uploads/" | tr -d '\r' |
        awk 'tolower($1) == "location:" {print $2}')
  [[ -n "$loc" ]] || { echo "curl-push: no Location for $f" >&2; return 1; }
  case "$loc" in http*) ;; *) loc="$reg$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=sha256:$d" ;; *) loc="$loc?digest=sha256:$d" ;; esac
  # -T streams the file (--data-binary @file would first read all of it into memory: 512 MiB
  # of RSS and a second copy per file, which understates the registry's limit).
  curl -sS -f -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' -T "$dir/$f" -o /dev/null "$loc"
}
pids=()
for a in "$@"; do one "$a" & pids+=($!); done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
SH
# curl-get.sh REG REPO OUTDIR FILE=DIGEST... : GET every blob in parallel into OUTDIR/FILE
cat >"$W/curl-get.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
reg=$1 repo=$2 out=$3; shift 3
mkdir -p "$out"
pids=()
for a in "$@"; do
  f=${a%%=*} d=${a#*=}
  curl -sS -f -o "$out/$f" "$reg/v2/$repo/blobs/sha256:$d" & pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
SH
# oras-pull-verify.sh REF OUTDIR SIG PUB : the peer of `modelsign verify --component`
cat >"$W/oras-pull-verify.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
oras pull --plain-http --no-tty -o "$2" "$1" >/dev/null
model_signing verify key "$2" --signature "$3" --public_key "$4" >/dev/null
SH
chmod +x "$W"/*.sh
BLOB_ARGS=()
for f in "${FILES[@]}"; do BLOB_ARGS+=("$f=${DIG[$f]}"); done

# ---------------------------------------------------------------------------------------------
# Byte-counting TCP proxy (between modelsign and the registry, for the verify check).
# Writes {"up": bytes client->registry, "down": bytes registry->client, "active": open conns}.
# ---------------------------------------------------------------------------------------------
cat >"$W/count-proxy.py" <<'PY'
import asyncio, json, os, sys

upstream_port, port_file, stats_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# Optional: cut the connection (both ways) once this many bytes went client->registry, once.
cut_after = int(sys.argv[4]) if len(sys.argv) > 4 else None
stats = {"up": 0, "down": 0, "connections": 0, "active": 0, "cuts": 0}

def dump():
    tmp = stats_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, stats_file)

async def pipe(reader, writer, key, other=None):
    try:
        while data := await reader.read(1 << 16):
            if key == "up" and cut_after is not None and stats["cuts"] == 0 and stats["up"] + len(data) >= cut_after:
                keep = cut_after - stats["up"]
                stats["up"] += keep
                stats["cuts"] += 1
                writer.write(data[:keep])
                await writer.drain()
                dump()
                if other is not None:
                    other.transport.abort()
                writer.transport.abort()
                return
            stats[key] += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()

async def handle(client_r, client_w):
    stats["connections"] += 1
    stats["active"] += 1
    dump()
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream_port)
    except OSError:
        client_w.close()
    else:
        await asyncio.gather(pipe(client_r, up_w, "up", client_w), pipe(up_r, client_w, "down"))
    stats["active"] -= 1
    dump()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    dump()
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.replace(port_file + ".tmp", port_file)
    async with server:
        await server.serve_forever()

asyncio.run(main())
PY
python3 "$W/count-proxy.py" "${HOSTPORT##*:}" "$W/proxy.port" "$W/proxy.json" 2>"$W/proxy.log" &
PROXY_PID=$!
for _ in $(seq 100); do [[ -s "$W/proxy.port" ]] && break; sleep 0.05; done
[[ -s "$W/proxy.port" ]] || { cat "$W/proxy.log" >&2; die "the counting proxy did not start"; }
PROXY="127.0.0.1:$(cat "$W/proxy.port")"
proxy_stat() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$W/proxy.json" "$1"; }
# count_down NAME CMD... : run CMD (which talks to $PROXY), record bytes registry->client in res/NAME.bytes
count_down() {
  local name=$1 before after
  shift
  before="$(proxy_stat down)"
  "$@" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "failed: $*"; }
  for _ in $(seq 100); do [[ "$(proxy_stat active)" == 0 ]] && break; sleep 0.05; done
  after="$(proxy_stat down)"
  echo $((after - before)) >"$W/res/$name.bytes"
}

# ---------------------------------------------------------------------------------------------
# Timing: measure NAME CMD... appends "wall_s rss_kib user_s sys_s registry_cpu_s other_cpu_s"
# to res/NAME. registry_cpu_s: CPU the registry (and proxy) used meanwhile. other_cpu_s: CPU used
# meanwhile by everything that is not this benchmark (other processes, kernel threads such as
# writeback), from /proc/stat minus our own children's CPU (bash `times`) minus the registry's.
# ---------------------------------------------------------------------------------------------
CLK_TCK="$(getconf CLK_TCK)"
machine_busy() { awk -v hz="$CLK_TCK" '/^cpu /{printf "%.2f", ($2+$3+$4+$7+$8+$9)/hz; exit}' /proc/stat; }
servers_cpu() {
  local p t=0
  for p in $REGISTRY_PID $PROXY_PID; do
    [[ -r "/proc/$p/stat" ]] && t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  awk -v t="$t" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", t/hz}'
}
# own_cpu: CPU of this shell and of every child it has waited for (call it directly, not in
# $(…): a subshell's `times` knows nothing of its parent's children), into $OWN_CPU
own_cpu() {
  times >"$W/times.out"
  OWN_CPU="$(awk '{for (i = 1; i <= 2; i++) {split($i, a, /[ms]/); s += a[1] * 60 + a[2]}} END{printf "%.2f", s}' "$W/times.out")"
}
measure() {
  local name=$1 t0 t1 b0 b1 s0 s1 o0 o1 free0
  shift
  sync
  echo "+ [$name] $*" >>"$CMDLOG"
  own_cpu
  b0=$(machine_busy) s0=$(servers_cpu) o0=$OWN_CPU
  # Free memory before the command: on this VM (free page reporting) a writer that lands in
  # memory the guest had left free may pay more system time (README, "pull was bimodal").
  free0=$(awk '/^MemFree:/{printf "%d", $2/1024}' /proc/meminfo)
  t0=$(date +%s%N)
  /usr/bin/time -f '%M %U %S' -o "$W/time.out" "$@" >>"$CMDLOG" 2>&1 || {
    tail -20 "$CMDLOG" >&2
    die "failed: $*"
  }
  t1=$(date +%s%N)
  own_cpu
  b1=$(machine_busy) s1=$(servers_cpu) o1=$OWN_CPU
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}') $(tail -1 "$W/time.out")" \
    "$(awk -v s0="$s0" -v s1="$s1" 'BEGIN{printf "%.2f", s1-s0}')" \
    "$(awk -v b0="$b0" -v b1="$b1" -v s0="$s0" -v s1="$s1" -v o0="$o0" -v o1="$o1" \
         'BEGIN{x = (b1-b0) - (s1-s0) - (o1-o0); if (x < 0) x = 0; printf "%.2f", x}')" "$free0" >>"$W/res/$name"
  log "  $name: $(tail -1 "$W/res/$name" | awk '{printf "%.3f s, %.1f MB peak RSS, cpu %.2f+%.2f s, registry %.2f s, other %.2f s, %d MiB free before", $1, $2*1024/1e6, $3, $4, $5, $6, $7}')"
}
median() { sort -n -k1,1 "$W/res/$1" | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
max_rss_mb() { awk 'BEGIN{m=0} $2>m{m=$2} END{printf "%.1f", m*1024/1e6}' "$W/res/$1"; }

# check_dir DIR: every file of the model is there with the right SHA-256
check_dir() {
  local f got
  for f in "${FILES[@]}"; do
    got="$(sha256sum "$1/$f" 2>/dev/null | cut -d' ' -f1 || true)"
    [[ "$got" == "${DIG[$f]}" ]] || die "$1/$f: wrong or missing (sha256 $got, want ${DIG[$f]})"
  done
}

# ---------------------------------------------------------------------------------------------
# Keys and the untimed setup: every blob in the registry; the reference model signed once.
# ---------------------------------------------------------------------------------------------
"$MS" keygen -o "$W/signer" >>"$CMDLOG" 2>&1
KEY="$W/signer.key" PUB="$W/signer.pub"
REF="$HOSTPORT/bench/model:v1"
log "setup: push $REF (untimed: stores every blob), sign it once, model_signing signature of the folder"
"$MS" push --plain-http --no-progress "$REF" "$MODEL" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "setup push failed"; }
"$MS" sign --plain-http --no-progress "$REF" --key "$KEY" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "setup sign failed"; }
model_signing sign key "$MODEL" --private_key "$KEY" --signature "$W/oms-setup.sig" >>"$CMDLOG" 2>&1 ||
  { tail -20 "$CMDLOG" >&2; die "model_signing sign failed"; }
# Sanity: both verifiers accept what they will be timed on.
"$MS" verify --plain-http --no-progress "$REF" --key "$PUB" --component "$COMPONENT" >>"$CMDLOG" 2>&1 ||
  { tail -20 "$CMDLOG" >&2; die "modelsign verify of the setup model failed"; }

if [[ "$BENCH_SIGN_4X" != 0 ]]; then
  MODEL4="$W/model4x"
  mkdir -p "$MODEL4"
  log "setup: a $((4 * BENCH_MIB)) MiB model (from the page-cached files) pushed once"
  cat "$MODEL/$W1" "$MODEL/$W2" "$MODEL/$W1" "$MODEL/$W2" >"$MODEL4/$W1"
  cat "$MODEL/$W2" "$MODEL/$W1" "$MODEL/$W2" "$MODEL/$W1" >"$MODEL4/$W2"
  for f in "$COMPONENT" config.json tokenizer.json README.md; do ln "$MODEL/$f" "$MODEL4/$f"; done
  REF4="$HOSTPORT/bench/model4x:v1"
  "$MS" push --plain-http --no-progress "$REF4" "$MODEL4" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "4x push failed"; }
fi

# The delta model: the same files (hard links: one inode, one digest-cache entry) but its own copy
# of the 1 MiB component, rewritten before each timed `sign DIR`.
MODELD="$W/model-delta"
mkdir -p "$MODELD"
for f in "${FILES[@]}"; do [[ "$f" == "$COMPONENT" ]] || ln "$MODEL/$f" "$MODELD/$f"; done
cp "$MODEL/$COMPONENT" "$MODELD/$COMPONENT"

if ((BENCH_FILES > 0)); then
  M2K="$W/many"
  log "setup: a model of $BENCH_FILES files of 32 KiB"
  python3 - "$M2K" "$BENCH_FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "shard%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "part%05d.bin" % i), "wb") as f:
        f.write(os.urandom(32768))
PY
  mapfile -t M2K_FILES < <(cd "$M2K" && find . -type f -printf '%P\n' | sort)
fi

# The digest cache records files left alone for 2 s; links just made moved the change times.
# Warm it (untimed) the way a user's previous push and sign would have.
sleep 2.2
"$MS" push --plain-http --no-progress "$HOSTPORT/bench/warm:v1" "$MODEL" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "warm-up push failed"; }
"$MS" sign "$MODELD" --key "$KEY" --signature "$W/delta-warm.sig" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "warm-up sign failed"; }

# Let the setup's writes reach the disk before anything is timed.
t_sync=$SECONDS
sync
log "setup done; sync took $((SECONDS - t_sync)) s; page cache holds $(fincore -n -o RES "$MODEL/$W1" "$MODEL/$W2" 2>/dev/null | paste -sd+ | sed 's/+/ + /g' || echo '?') of the weight files"

# ---------------------------------------------------------------------------------------------
# The timings, interleaved run by run.
# ---------------------------------------------------------------------------------------------
# One function per timed step; $i is the run number. Within each group the tools take turns
# going first (run 1: modelsign first, run 2: the next tool first, …), so no tool always pays
# for whatever the step before left behind (dirty pages, freed memory, warm connections).
t_push_ms() { measure push_ms "$MS" push --no-cache --plain-http --no-progress "$HOSTPORT/bench/ms-$i:v1" "$MODEL"; }
t_push_oras() {
  measure push_oras env -C "$MODEL" oras push --plain-http --no-tty \
    --artifact-type application/vnd.cncf.model.manifest.v1+json "$HOSTPORT/bench/oras-$i:v1" "${ORAS_FILES[@]}"
}
t_push_curl() { measure push_curl "$W/curl-push.sh" "$REG" "bench/curl-$i" "$MODEL" "${BLOB_ARGS[@]}"; }
t_repush_ms() { measure repush_ms "$MS" push --plain-http --no-progress "$HOSTPORT/bench/ms-1:v1" "$MODEL"; }
t_repush_oras() {
  measure repush_oras env -C "$MODEL" oras push --plain-http --no-tty \
    --artifact-type application/vnd.cncf.model.manifest.v1+json "$HOSTPORT/bench/oras-1:v1" "${ORAS_FILES[@]}"
}
# Each pulled folder is checked in run 1, then removed before its dirty pages are written back.
pulled() {
  if ((i == 1)); then check_dir "$1"; fi
  rm -rf "$1"
}
t_pull_ms() { measure pull_ms "$MS" pull --plain-http --no-progress "$REF" -o "$W/pull-ms" && pulled "$W/pull-ms"; }
t_pull_oras() { measure pull_oras oras pull --plain-http --no-tty "$REF" -o "$W/pull-oras" && pulled "$W/pull-oras"; }
t_pull_curl() { measure pull_curl "$W/curl-get.sh" "$REG" bench/model "$W/pull-curl" "${BLOB_ARGS[@]}" && pulled "$W/pull-curl"; }
t_signdir_ms() { measure signdir_ms "$MS" sign --no-cache "$MODEL" --key "$KEY" --signature "$W/ms-$i.sig"; }
# One 1 MiB file changed (rewritten in place, untimed) since the last sign of the delta model.
t_signdelta_ms() {
  openssl rand -out "$MODELD/$COMPONENT" 1048576
  measure signdelta_ms "$MS" sign "$MODELD" --key "$KEY" --signature "$W/delta-$i.sig"
}
t_push2k_ms() { measure push2k_ms "$MS" push --no-cache --plain-http --no-progress "$HOSTPORT/bench/many-ms-$i:v1" "$M2K"; }
t_push2k_oras() { measure push2k_oras env -C "$M2K" oras push --plain-http --no-tty "$HOSTPORT/bench/many-oras-$i:v1" "${M2K_FILES[@]}"; }
t_pull2k_ms() { measure pull2k_ms "$MS" pull --plain-http --no-progress "$HOSTPORT/bench/many-ms-1:v1" -o "$W/pull2k-ms" && rm -rf "$W/pull2k-ms"; }
t_pull2k_oras() { measure pull2k_oras oras pull --plain-http --no-tty "$HOSTPORT/bench/many-oras-1:v1" -o "$W/pull2k-oras" && rm -rf "$W/pull2k-oras"; }
# The 2,000-layer manifest stays quick to read: inspect it, and verify one of its files.
t_inspect2k_ms() { measure inspect2k_ms "$MS" inspect --plain-http "$HOSTPORT/bench/many-ms-1:v1"; }
t_verify2k_ms() {
  measure verify2k_ms "$MS" verify --plain-http --no-progress "$HOSTPORT/bench/many-ms-1:v1" --key "$PUB" --component "${M2K_FILES[0]}"
}
t_signdir_oms() { measure signdir_oms model_signing sign key "$MODEL" --private_key "$KEY" --signature "$W/oms-$i.sig"; }
# ms-1 and model4x collect one more signature per run, alike.
t_signref_ms() { measure signref_ms "$MS" sign --plain-http --no-progress "$HOSTPORT/bench/ms-1:v1" --key "$KEY"; }
t_signref4_ms() { measure signref4_ms "$MS" sign --plain-http --no-progress "$REF4" --key "$KEY"; }
t_verify_ms() { measure verify_ms "$MS" verify --plain-http --no-progress "$REF" --key "$PUB" --component "$COMPONENT"; }
t_verify_peer() {
  rm -rf "$W/verify-oras"
  measure verify_peer "$W/oras-pull-verify.sh" "$REF" "$W/verify-oras" "$W/oms-setup.sig" "$PUB"
  rm -rf "$W/verify-oras"
}
# in_turn STEP… : run the steps, starting with step number (i-1) mod count
in_turn() {
  local n=$# k
  local steps=("$@")
  for ((k = 0; k < n; k++)); do "${steps[$(((i - 1 + k) % n))]}"; done
}

for ((i = 1; i <= BENCH_RUNS; i++)); do
  log "run $i/$BENCH_RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
  cut -d' ' -f1 /proc/loadavg >>"$W/res/load"
  in_turn t_push_ms t_push_oras t_push_curl   # (1) push to a fresh repository; (4) curl PUT limit
  in_turn t_repush_ms t_repush_oras           # (2) re-push: every blob already there
  in_turn t_pull_ms t_pull_oras t_pull_curl   # (3) pull into an empty folder; (4) curl GET limit
  in_turn t_signdir_ms t_signdir_oms          # (5) sign a local folder (signature written outside it)
  t_signdelta_ms                              # (8) sign it again after one 1 MiB file changed
  if ((BENCH_FILES > 0)); then                # (9) many small files
    in_turn t_push2k_ms t_push2k_oras
    in_turn t_pull2k_ms t_pull2k_oras
    if ((i == 1)); then                       # signed once, from its manifest (untimed)
      "$MS" sign --plain-http --no-progress "$HOSTPORT/bench/many-ms-1:v1" --key "$KEY" >>"$CMDLOG" 2>&1 ||
        { tail -20 "$CMDLOG" >&2; die "sign of the many-files model failed"; }
    fi
    t_inspect2k_ms
    t_verify2k_ms
  fi
  if [[ "$BENCH_SIGN_4X" != 0 ]]; then        # (6) sign the pushed model from its manifest alone
    in_turn t_signref_ms t_signref4_ms
  else
    t_signref_ms
  fi
  in_turn t_verify_ms t_verify_peer           # (7) verify one 1 MiB component vs pull all + verify
done

# The two signatures of the same folder agree (modelsign writes what model_signing writes).
model_signing verify key "$MODEL" --signature "$W/ms-1.sig" --public_key "$PUB" >>"$CMDLOG" 2>&1 ||
  { tail -20 "$CMDLOG" >&2; die "model_signing does not accept modelsign's folder signature"; }

# Bytes fetched, through the counting proxy (untimed, one run each).
log "bytes fetched through the counting proxy"
count_down verify_ms "$MS" verify --plain-http --no-progress "$PROXY/bench/model:v1" --key "$PUB" --component "$COMPONENT"
rm -rf "$W/verify-oras"
count_down verify_peer oras pull --plain-http --no-tty "$PROXY/bench/model:v1" -o "$W/verify-oras"
rm -rf "$W/verify-oras"

# ---------------------------------------------------------------------------------------------
# (10) An upload cut at 60 %: how much of the blob goes again (untimed, once per registry).
# The cutting proxy counts every byte client->registry (headers included) and cuts once.
# ---------------------------------------------------------------------------------------------
# start_server NAME CMD... : start a registry that logs "listening on 127.0.0.1:PORT"; sets $ADDR
start_server() {
  local name=$1
  shift
  "$@" >"$W/$name.log" 2>&1 &
  EXTRA_PIDS="${EXTRA_PIDS:-} $!"
  ADDR=""
  for _ in $(seq 200); do
    ADDR="$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$W/$name.log" | head -1 | sed 's/^listening on //' || true)"
    [[ -n "$ADDR" ]] && break
    sleep 0.05
  done
  [[ -n "$ADDR" ]] || { cat "$W/$name.log" >&2; die "$name did not say where it listens"; }
}
# resume_cut NAME UPSTREAM: push the resume model through a proxy that cuts at 60 %; writes
# "bytes_sent blob_bytes" to res/NAME
resume_cut() {
  local name=$1 upstream=$2 dir="$W/cutproxy-$1" port
  mkdir -p "$dir"
  python3 "$W/count-proxy.py" "${upstream##*:}" "$dir/port" "$dir/stats.json" $((RESUME_BYTES * 6 / 10)) 2>"$dir/log" &
  EXTRA_PIDS="${EXTRA_PIDS:-} $!"
  for _ in $(seq 100); do [[ -s "$dir/port" ]] && break; sleep 0.05; done
  port="$(cat "$dir/port")"
  "$MS" push --no-cache --plain-http --no-progress "127.0.0.1:$port/bench/resume-$name:v1" "$W/resume" >>"$CMDLOG" 2>&1 ||
    { tail -20 "$CMDLOG" >&2; die "push through the cutting proxy ($name) failed"; }
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["cuts"] == 1, s; print(s["up"], sys.argv[2])' \
    "$dir/stats.json" "$RESUME_BYTES" >"$W/res/$name" || die "the cutting proxy ($name) did not cut"
  log "  $name: $(awk '{printf "%.1f MiB sent for a %.1f MiB blob: %.0f %% of it again", $1/1048576, $2/1048576, 100*($1-$2)/$2}' "$W/res/$name")"
}
RESUME_BYTES=$((BENCH_RESUME_MIB * 1048576))
if ((BENCH_RESUME_MIB > 0)); then
  log "upload cut at 60 % of a $BENCH_RESUME_MIB MiB blob"
  mkdir -p "$W/resume"
  openssl rand -out "$W/resume/weights.safetensors" "$RESUME_BYTES"
  resume_cut resume_distribution "$HOSTPORT"
  if command -v cue-registry >/dev/null 2>&1; then
    start_server cue-registry cue-registry -addr 127.0.0.1:0
    resume_cut resume_cue "$ADDR"
  fi
  rm -rf "$W/resume"
fi

# ---------------------------------------------------------------------------------------------
# (12) Issue 6, chain of custody: a 1 GiB model with vision/ and text/ components carrying six
# referrers (publisher's whole-model signature: OMS + manifest statement; the vision and text
# teams' component signatures; the security team's model card: card + CycloneDX), and
# `verify --policy --component vision/…` under a five-rule policy: timed, and its bytes counted
# through the proxy. The byte cap (component + 64 KiB) is a hard limit: over it, the row says
# NOT MET and the script exits 1 after writing the table.
# ---------------------------------------------------------------------------------------------
HARD_FAILURES=()
CUSTODY_COMPONENT="vision/encoder.safetensors"
if [[ "$BENCH_CUSTODY" != 0 ]]; then
  CUS="$W/custody"
  mkdir -p "$CUS/model/vision" "$CUS/model/text" "$CUS/keys"
  # Hard links: the same bytes (and blobs already in the registry) under team folders.
  ln "$MODEL/$COMPONENT" "$CUS/model/$CUSTODY_COMPONENT"
  ln "$MODEL/$W1" "$CUS/model/text/$W1"
  ln "$MODEL/$W2" "$CUS/model/text/$W2"
  for f in config.json tokenizer.json README.md; do ln "$MODEL/$f" "$CUS/model/$f"; done
  CUS_REF="$HOSTPORT/bench/custody:v1"
  log "custody: push $CUS_REF, six signatures and attestations by four parties"
  "$MS" push --plain-http --no-progress "$CUS_REF" "$CUS/model" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "custody push failed"; }
  for p in publisher security vision text; do "$MS" keygen -o "$CUS/keys/$p" >>"$CMDLOG" 2>&1; done
  cus() { "$MS" "$@" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "custody setup failed: $*"; }; }
  cus sign --plain-http --no-progress "$CUS_REF" --key "$CUS/keys/publisher.key"
  cus sign --plain-http --no-progress "$CUS_REF" --key "$CUS/keys/vision.key" --component 'vision/**'
  cus sign --plain-http --no-progress "$CUS_REF" --key "$CUS/keys/text.key" --component 'text/**'
  cat >"$CUS/card.yaml" <<'CARD'
name: bench-model
version: "1.0"
developer: vision and text teams
publisher: bench publisher
description: A generated model for scripts/bench.sh.
license: Apache-2.0
security:
  sensitive-data: none; generated bytes
  considerations: reviewed by the security team
CARD
  cus attest --plain-http --no-progress "$CUS_REF" --model-card "$CUS/card.yaml" --key "$CUS/keys/security.key"
  cat >"$CUS/policy.yaml" <<'POLICY'
version: 1
signers:
  publisher: {key: keys/publisher.pub}
  security:  {key: keys/security.pub}
  vision:    {key: keys/vision.pub}
  text:      {key: keys/text.pub}
require:
  - signed: [publisher]                        # the publisher released exactly this model
  - components: "vision/**"                    # the vision team's encoder, unchanged
    signed: [vision]
  - components: "text/**"                      # the text team's decoder weights
    signed: [text]
  - components: "*.json"                       # configuration: the publisher or the text team
    signed: {of: [publisher, text], at-least: 1}
  - model-card:                                # reviewed by security, licence and signer named
      signed: [security]
      fields: [license, security.certificate]
POLICY
  CUS_REFERRERS="$("$MS" discover --plain-http --output json "$CUS_REF" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["referrers"]))')"
  [[ "$CUS_REFERRERS" == 6 ]] || die "custody model carries $CUS_REFERRERS referrers, not 6"
  CUS_RULES="$(grep -c '^  - ' "$CUS/policy.yaml")"
  [[ "$CUS_RULES" == 5 ]] || die "custody policy has $CUS_RULES rules, not 5"
  # The policy passes, every rule is reported, and only the component was checked.
  "$MS" verify --plain-http --no-progress --output json "$CUS_REF" --policy "$CUS/policy.yaml" --component "$CUSTODY_COMPONENT" >"$CUS/report.json" 2>>"$CMDLOG" ||
    { cat "$CUS/report.json" >&2; die "custody verify did not pass"; }
  python3 - "$CUS/report.json" <<'PY' || die "custody verify report is not what the policy says"
import json, sys
r = json.load(open(sys.argv[1]))
rules = r["policy"]["rules"]
assert r["verified"] and len(rules) == 6 and all(x["passed"] for x in rules), rules  # five rules + consistency
assert [c["path"] for c in r["components"]] == ["vision/encoder.safetensors"], r["components"]
PY
  CUS_COMPONENT_BYTES="$(stat -c %s "$CUS/model/$CUSTODY_COMPONENT")"
  for ((i = 1; i <= BENCH_RUNS; i++)); do
    measure custody_verify_ms "$MS" verify --plain-http --no-progress "$CUS_REF" --policy "$CUS/policy.yaml" --component "$CUSTODY_COMPONENT"
  done
  count_down custody_verify_ms "$MS" verify --plain-http --no-progress "$PROXY/bench/custody:v1" --policy "$CUS/policy.yaml" --component "$CUSTODY_COMPONENT"
  rm -rf "$CUS/model"
fi

# ---------------------------------------------------------------------------------------------
# (13) Issue 11, archive layers: a tar+gzip layer and a plain tar layer (a BENCH_MIB/2 weight
# file plus the small files), pushed as CNCF ModelPack weight layers with oras; `modelsign pull`
# (download, hash, inflate, unpack) vs `tar -x` of the same archive from a local file; and the
# same pull from an OCI layout folder the artifacts were copied into (a local blob file). The weight
# file is made to compress like real weights (bf16 safetensors shrink by 10-20 % under gzip): the
# pseudo-random bytes with their top bit cleared (7 bits of entropy per byte), so inflating is
# real work, not the copying of stored blocks that random bytes would give.
# ---------------------------------------------------------------------------------------------
if [[ "$BENCH_UNPACK" != 0 ]]; then
  UNP="$W/unpack"
  mkdir -p "$UNP/src"
  log "archive layers: tar and tar+gzip (gzip -${BENCH_UNPACK_GZIP_LEVEL}) of a $((BENCH_MIB / 2)) MiB weight file and the small files"
  tr '\200-\377' '\000-\177' <"$MODEL/$W1" >"$UNP/src/$W1"
  UNP_FILES=("$W1" "$COMPONENT" config.json tokenizer.json README.md)
  for f in "${UNP_FILES[@]:1}"; do ln "$MODEL/$f" "$UNP/src/$f"; done
  declare -A UNP_DIG
  for f in "${UNP_FILES[@]}"; do UNP_DIG[$f]="$(sha256sum "$UNP/src/$f" | cut -d' ' -f1)"; done
  tar -C "$UNP/src" -cf "$UNP/weights.tar" "${UNP_FILES[@]}"
  rm -rf "$UNP/src"
  gzip -"$BENCH_UNPACK_GZIP_LEVEL" -c "$UNP/weights.tar" >"$UNP/weights.tar.gz"
  UNP_TAR_REF="$HOSTPORT/bench/unpack-tar:v1" UNP_TGZ_REF="$HOSTPORT/bench/unpack-tgz:v1"
  (cd "$UNP" && oras push --plain-http --no-tty --artifact-type application/vnd.cncf.model.manifest.v1+json \
    "$UNP_TAR_REF" weights.tar:application/vnd.cncf.model.weight.v1.tar) >>"$CMDLOG" 2>&1 || die "oras push of the tar layer failed"
  (cd "$UNP" && oras push --plain-http --no-tty --artifact-type application/vnd.cncf.model.manifest.v1+json \
    "$UNP_TGZ_REF" weights.tar.gz:application/vnd.cncf.model.weight.v1.tar+gzip) >>"$CMDLOG" 2>&1 || die "oras push of the tar+gzip layer failed"
  UNP_TAR_BYTES="$(stat -c %s "$UNP/weights.tar")" UNP_TGZ_BYTES="$(stat -c %s "$UNP/weights.tar.gz")"
  # The same two artifacts copied into OCI layout folders: a local blob file, as tar reads one.
  UNP_TAR_LAYOUT="oci:$UNP/layout-tar:v1" UNP_TGZ_LAYOUT="oci:$UNP/layout-tgz:v1"
  "$MS" copy --plain-http --no-progress "$UNP_TAR_REF" "$UNP_TAR_LAYOUT" >>"$CMDLOG" 2>&1 || die "copy of the tar layer into a layout folder failed"
  "$MS" copy --plain-http --no-progress "$UNP_TGZ_REF" "$UNP_TGZ_LAYOUT" >>"$CMDLOG" 2>&1 || die "copy of the tar+gzip layer into a layout folder failed"
  # unpacked DIR: in run 1, every file of the archive is there with the right SHA-256; then removed
  unpacked() {
    local f got
    if ((i == 1)); then
      for f in "${UNP_FILES[@]}"; do
        got="$(sha256sum "$1/$f" 2>/dev/null | cut -d' ' -f1 || true)"
        [[ "$got" == "${UNP_DIG[$f]}" ]] || die "$1/$f: wrong or missing after unpacking (sha256 $got)"
      done
    fi
    rm -rf "$1"
  }
  t_unpack_tgz_ms() { measure unpack_tgz_ms "$MS" pull --plain-http --no-progress "$UNP_TGZ_REF" -o "$UNP/out-ms" && unpacked "$UNP/out-ms"; }
  t_unpack_tgz_tar() { mkdir -p "$UNP/out-tar" && measure unpack_tgz_tar tar -xzf "$UNP/weights.tar.gz" -C "$UNP/out-tar" && unpacked "$UNP/out-tar"; }
  t_unpack_tar_ms() { measure unpack_tar_ms "$MS" pull --plain-http --no-progress "$UNP_TAR_REF" -o "$UNP/out-ms" && unpacked "$UNP/out-ms"; }
  t_unpack_tar_tar() { mkdir -p "$UNP/out-tar" && measure unpack_tar_tar tar -xf "$UNP/weights.tar" -C "$UNP/out-tar" && unpacked "$UNP/out-tar"; }
  t_unpack_tgz_ms_layout() { measure unpack_tgz_ms_layout "$MS" pull --no-progress "$UNP_TGZ_LAYOUT" -o "$UNP/out-ms" && unpacked "$UNP/out-ms"; }
  t_unpack_tar_ms_layout() { measure unpack_tar_ms_layout "$MS" pull --no-progress "$UNP_TAR_LAYOUT" -o "$UNP/out-ms" && unpacked "$UNP/out-ms"; }
  for ((i = 1; i <= BENCH_RUNS; i++)); do
    log "archive run $i/$BENCH_RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
    in_turn t_unpack_tgz_ms t_unpack_tgz_tar t_unpack_tgz_ms_layout
    in_turn t_unpack_tar_ms t_unpack_tar_tar t_unpack_tar_ms_layout
  done
  rm -rf "$UNP"
fi

# ---------------------------------------------------------------------------------------------
# (11) BENCH_BIG=1: a model of four BENCH_BIG_MIB files, every operation against its peer.
# ---------------------------------------------------------------------------------------------
BIG_TIMINGS=()
if [[ "$BENCH_BIG" == 1 ]]; then
  # The small models are done with: their folders go (the registry keeps its copies).
  rm -rf "${MODEL4:-}" "${M2K:-}" "$MODELD"
  big_space_check "$W"
  BIG="$W/big"
  mkdir -p "$BIG"
  log "big model: four files of $BENCH_BIG_MIB MiB"
  BIG_FILES=()
  for k in 1 2 3 4; do
    f="model-0000$k-of-00004.safetensors"
    # openssl rand takes at most 2^31-1 bytes at once: 1 GiB pieces.
    left=$BENCH_BIG_MIB
    while ((left > 0)); do
      piece=$((left < 1024 ? left : 1024))
      openssl rand $((piece * 1048576)) || die "openssl rand failed"
      left=$((left - piece))
    done >"$BIG/$f"
    BIG_FILES+=("$f")
  done
  cp "$MODEL/$COMPONENT" "$MODEL/config.json" "$BIG/"
  BIG_FILES+=("$COMPONENT" config.json)
  BIG_ORAS=()
  for f in "${BIG_FILES[@]}"; do BIG_ORAS+=("$f:application/vnd.cncf.model.weight.v1.raw"); done
  BIG_REF="$HOSTPORT/bench/big:v1"
  # The registry's copy of each big file (distribution's filesystem layout), for the page
  # cache state once the source folder is gone.
  BIG_BLOBS=()
  for f in "${BIG_FILES[@]:0:4}"; do
    d="$(sha256sum "$BIG/$f" | cut -d' ' -f1)"
    BIG_BLOBS+=("$W/registry/data/docker/registry/v2/blobs/sha256/${d:0:2}/$d/data")
  done
  # page_cache NAME WHAT FILES…: how much of FILES the page cache holds before step NAME
  page_cache() {
    local name=$1 what=$2
    shift 2
    echo "$name($what) $(fincore -b -n -o RES "$@" 2>/dev/null | awk '{s += $1} END{printf "%.1f", s/1073741824}')" >>"$W/res/big_page_cache"
  }
  warm_registry() { sync; cat "${BIG_BLOBS[@]}" >/dev/null; }
  sleep 2.2 # settled, so the untimed push below fills the digest cache
  "$MS" push --plain-http --no-progress "$BIG_REF" "$BIG" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "big push failed"; }
  "$MS" sign --plain-http --no-progress "$BIG_REF" --key "$KEY" >>"$CMDLOG" 2>&1 || { tail -20 "$CMDLOG" >&2; die "big sign failed"; }
  model_signing sign key "$BIG" --private_key "$KEY" --signature "$W/big-oms.sig" >>"$CMDLOG" 2>&1 ||
    { tail -20 "$CMDLOG" >&2; die "model_signing sign of the big model failed"; }
  for f in "${BIG_BLOBS[@]}"; do [[ -f "$f" ]] || die "no registry blob at $f (distribution's layout changed?)"; done
  sync
  BIG_TIMINGS=(big_push_ms big_push_oras big_pull_ms big_pull_oras big_signref_ms big_signdir_ms big_signdir_oms big_verify_ms big_verify_peer)
  # Every step that reads the source folder, all runs; then the folder goes and the steps
  # that read the registry run (the pulls write a copy each, deleted before the next).
  for ((i = 1; i <= BENCH_BIG_RUNS; i++)); do
    log "big run $i/$BENCH_BIG_RUNS, source folder steps (load $(cut -d' ' -f1-3 /proc/loadavg))"
    page_cache push source "${BIG_FILES[@]/#/$BIG/}"
    measure big_push_ms "$MS" push --no-cache --plain-http --no-progress "$HOSTPORT/bench/big-ms-$i:v1" "$BIG"
    measure big_push_oras env -C "$BIG" oras push --plain-http --no-tty "$HOSTPORT/bench/big-oras-$i:v1" "${BIG_ORAS[@]}"
    page_cache sign_dir source "${BIG_FILES[@]/#/$BIG/}"
    measure big_signdir_ms "$MS" sign "$BIG" --key "$KEY" --signature "$W/big-ms-$i.sig"
    measure big_signdir_oms model_signing sign key "$BIG" --private_key "$KEY" --signature "$W/big-oms-$i.sig"
  done
  log "deleting the big source folder ($((4 * BENCH_BIG_MIB / 1024)) GiB): the registry's copy is what the rest reads"
  rm -rf "$BIG"
  for ((i = 1; i <= BENCH_BIG_RUNS; i++)); do
    log "big run $i/$BENCH_BIG_RUNS, registry steps (load $(cut -d' ' -f1-3 /proc/loadavg))"
    # Each pull starts with the registry's blobs read into the page cache (untimed), so the
    # first puller does not pay for reading them from disk and the second get them cached.
    warm_registry
    page_cache pull_ms registry "${BIG_BLOBS[@]}"
    measure big_pull_ms "$MS" pull --plain-http --no-progress "$BIG_REF" -o "$W/big-pull" && rm -rf "$W/big-pull"
    warm_registry
    page_cache pull_oras registry "${BIG_BLOBS[@]}"
    measure big_pull_oras oras pull --plain-http --no-tty "$BIG_REF" -o "$W/big-pull" && rm -rf "$W/big-pull"
    measure big_signref_ms "$MS" sign --plain-http --no-progress "$BIG_REF" --key "$KEY"
    measure big_verify_ms "$MS" verify --plain-http --no-progress "$BIG_REF" --key "$PUB" --component "$COMPONENT"
    rm -rf "$W/big-verify"
    measure big_verify_peer "$W/oras-pull-verify.sh" "$BIG_REF" "$W/big-verify" "$W/big-oms.sig" "$PUB"
    rm -rf "$W/big-verify"
  done
fi

LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------
# row OP MS PEER RATIO TARGET MET
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f×", a/b; else print "—" }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a <= b) print "yes"; else print "**no**" }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a < b) print "yes"; else print "**no**" }'; }
secs() { awk -v s="$1" 'BEGIN{ printf "%.2f s", s }'; }
rate() { awk -v s="$1" -v b="$MODEL_BYTES" 'BEGIN{ printf "%.0f MB/s", b/s/1e6 }'; }
MIBS="$BENCH_MIB MiB"
[[ $BENCH_MIB -ge 1024 && $((BENCH_MIB % 1024)) -eq 0 ]] && MIBS="$((BENCH_MIB / 1024)) GiB"
MIBS4="$((4 * BENCH_MIB)) MiB"
[[ $((4 * BENCH_MIB)) -ge 1024 && $((4 * BENCH_MIB % 1024)) -eq 0 ]] && MIBS4="$((4 * BENCH_MIB / 1024)) GiB"

m_push_ms=$(median push_ms) m_push_oras=$(median push_oras) m_push_curl=$(median push_curl)
m_repush_ms=$(median repush_ms) m_repush_oras=$(median repush_oras)
m_pull_ms=$(median pull_ms) m_pull_oras=$(median pull_oras) m_pull_curl=$(median pull_curl)
m_signdir_ms=$(median signdir_ms) m_signdir_oms=$(median signdir_oms)
m_signref_ms=$(median signref_ms)
m_verify_ms=$(median verify_ms) m_verify_peer=$(median verify_peer)

r=$(ratio "$m_push_ms" "$m_push_oras")
row "push, fresh repository ($MIBS)" "$(secs "$m_push_ms") ($(rate "$m_push_ms"))" "oras push: $(secs "$m_push_oras")" "$r" "≤ 1.00× oras" "$(le "${r%×}" 1.00)"
row "push, fresh repository: registry limit" "$(secs "$m_push_ms")" "parallel curl POST+PUT, pre-hashed: $(secs "$m_push_curl") ($(rate "$m_push_curl"))" "$(ratio "$m_push_ms" "$m_push_curl")" "— (informative)" "—"
row "re-push, every blob present" "$(secs "$m_repush_ms")" "oras push: $(secs "$m_repush_oras")" "$(ratio "$m_repush_ms" "$m_repush_oras")" "— (informative)" "—"
r=$(ratio "$m_pull_ms" "$m_pull_oras")
row "pull, whole model into an empty folder" "$(secs "$m_pull_ms") ($(rate "$m_pull_ms"))" "oras pull: $(secs "$m_pull_oras")" "$r" "≤ 1.00× oras" "$(le "${r%×}" 1.00)"
# The same round's pulls, run by run: the worst ratio, and every run's.
per_run=$(paste -d' ' <(cut -d' ' -f1 "$W/res/pull_ms") <(cut -d' ' -f1 "$W/res/pull_oras") |
  awk '{printf "%s%.2f×", (NR > 1 ? " / " : ""), $1/$2}')
worst=$(paste -d' ' <(cut -d' ' -f1 "$W/res/pull_ms") <(cut -d' ' -f1 "$W/res/pull_oras") |
  awk 'BEGIN{w=0} {r=$1/$2; if (r > w) w=r} END{printf "%.2f", w}')
row "pull, whole model: each run against oras in the same run" "runs: $per_run" "oras pull" "worst ${worst}×" "≤ 1.00× oras in every run" "$(le "$worst" 1.00)"
r=$(ratio "$m_pull_ms" "$m_pull_curl")
row "pull: registry limit" "$(secs "$m_pull_ms")" "parallel curl GET: $(secs "$m_pull_curl") ($(rate "$m_pull_curl"))" "$r" "≤ 1.10× curl" "$(le "${r%×}" 1.10)"
r=$(ratio "$m_signdir_ms" "$m_signdir_oms")
row "sign a local folder" "$(secs "$m_signdir_ms")" "model_signing sign key: $(secs "$m_signdir_oms")" "$r" "≤ 0.50× model_signing" "$(le "${r%×}" 0.50)"
row "sign REF from the manifest ($MIBS)" "$(secs "$m_signref_ms")" "—" "—" "< 0.20 s" "$(lt "$m_signref_ms" 0.2)"
if [[ "$BENCH_SIGN_4X" != 0 ]]; then
  m_signref4_ms=$(median signref4_ms)
  row "sign REF from the manifest ($MIBS4)" "$(secs "$m_signref4_ms")" "same at $MIBS: $(secs "$m_signref_ms")" "$(ratio "$m_signref4_ms" "$m_signref_ms") (4× model / 1×)" "< 0.20 s, size-independent" "$(lt "$m_signref4_ms" 0.2)"
fi
r=$(ratio "$m_verify_ms" "$m_verify_peer")
row "verify REF --component (1 MiB file)" "$(secs "$m_verify_ms")" "oras pull + model_signing verify key: $(secs "$m_verify_peer")" "$r" "≤ 0.10× (a tenth)" "$(le "${r%×}" 0.10)"
b_ms=$(cat "$W/res/verify_ms.bytes") b_peer=$(cat "$W/res/verify_peer.bytes")
limit=$((COMPONENT_BYTES + 65536))
row "bytes fetched by that verify" "$b_ms B (component $COMPONENT_BYTES + $((b_ms - COMPONENT_BYTES)))" "oras pull: $b_peer B" "$(awk -v a="$b_ms" -v b="$b_peer" 'BEGIN{printf "%.4f×", a/b}')" "≤ $limit B (component + 64 KiB)" "$(le "$b_ms" "$limit")"
rss_push_ms=$(max_rss_mb push_ms) rss_push_oras=$(max_rss_mb push_oras)
rss_pull_ms=$(max_rss_mb pull_ms) rss_pull_oras=$(max_rss_mb pull_oras)
row "peak RSS, push ($MIBS)" "$rss_push_ms MB" "oras push: $rss_push_oras MB" "$(ratio "$rss_push_ms" "$rss_push_oras")" "< 50 MB" "$(lt "$rss_push_ms" 50)"
row "peak RSS, pull ($MIBS)" "$rss_pull_ms MB" "oras pull: $rss_pull_oras MB" "$(ratio "$rss_pull_ms" "$rss_pull_oras")" "< 50 MB" "$(lt "$rss_pull_ms" 50)"

# Issue 8 rows
m_signdelta_ms=$(median signdelta_ms)
r=$(ratio "$m_repush_ms" "$m_repush_oras")
row "re-push, unchanged model, digest cache warm" "$(secs "$m_repush_ms")" "oras push: $(secs "$m_repush_oras")" "$r" "≤ 0.20× oras" "$(le "${r%×}" 0.20)"
r=$(ratio "$m_signdelta_ms" "$m_signdir_ms")
row "sign DIR after one 1 MiB file changed" "$(secs "$m_signdelta_ms")" "fresh sign DIR (--no-cache): $(secs "$m_signdir_ms")" "$r" "≤ 0.20× fresh" "$(le "${r%×}" 0.20)"
if ((BENCH_FILES > 0)); then
  m_push2k_ms=$(median push2k_ms) m_push2k_oras=$(median push2k_oras)
  m_pull2k_ms=$(median pull2k_ms) m_pull2k_oras=$(median pull2k_oras)
  r=$(ratio "$m_push2k_ms" "$m_push2k_oras")
  row "push, $BENCH_FILES files of 32 KiB" "$(secs "$m_push2k_ms")" "oras push: $(secs "$m_push2k_oras")" "$r" "≤ 1.00× oras" "$(le "${r%×}" 1.00)"
  r=$(ratio "$m_pull2k_ms" "$m_pull2k_oras")
  row "pull, $BENCH_FILES files of 32 KiB" "$(secs "$m_pull2k_ms")" "oras pull: $(secs "$m_pull2k_oras")" "$r" "≤ 1.00× oras" "$(le "${r%×}" 1.00)"
  m_inspect2k_ms=$(median inspect2k_ms) m_verify2k_ms=$(median verify2k_ms)
  row "inspect, $BENCH_FILES-layer manifest" "$(secs "$m_inspect2k_ms")" "—" "—" "≤ 0.20 s" "$(le "$m_inspect2k_ms" 0.20)"
  row "verify REF --component, $BENCH_FILES-layer manifest" "$(secs "$m_verify2k_ms")" "—" "—" "≤ 0.20 s" "$(le "$m_verify2k_ms" 0.20)"
fi
if ((BENCH_RESUME_MIB > 0)); then
  for reg in cue distribution; do
    [[ -f "$W/res/resume_$reg" ]] || continue
    read -r sent blob <"$W/res/resume_$reg"
    again=$(awk -v s="$sent" -v b="$blob" 'BEGIN{printf "%.2f", (s-b)/b}')
    if [[ $reg == cue ]]; then target="≤ 0.50 of the blob again" met=$(le "$again" 0.50); else target="— (distribution 2.8 cancels a session cut inside a PATCH: no client can resume it, whole retry)" met="—"; fi
    row "upload of $BENCH_RESUME_MIB MiB cut at 60 % ($reg)" "$(awk -v s="$sent" 'BEGIN{printf "%.1f MiB sent", s/1048576}')" "—" "$again of the blob sent again" "$target" "$met"
  done
fi
if [[ "$BENCH_BIG" == 1 ]]; then
  BIGS="$((4 * BENCH_BIG_MIB)) MiB"
  [[ $((4 * BENCH_BIG_MIB % 1024)) -eq 0 ]] && BIGS="$((4 * BENCH_BIG_MIB / 1024)) GiB"
  big_row() { # OP MS_NAME PEER_NAME PEER_LABEL
    local a b rss
    a=$(median "$2")
    rss=$(max_rss_mb "$2")
    if [[ -n "$3" ]]; then
      b=$(median "$3")
      row "$1 ($BIGS)" "$(secs "$a"), $rss MB peak" "$4: $(secs "$b"), $(max_rss_mb "$3") MB peak" "$(ratio "$a" "$b")" "RSS < 50 MB" "$(lt "$rss" 50)"
    else
      row "$1 ($BIGS)" "$(secs "$a"), $rss MB peak" "—" "—" "RSS < 50 MB" "$(lt "$rss" 50)"
    fi
  }
  big_row "push, fresh repository" big_push_ms big_push_oras "oras push"
  big_row "pull, whole model" big_pull_ms big_pull_oras "oras pull"
  big_row "sign REF" big_signref_ms "" ""
  big_row "sign DIR, digest cache warm" big_signdir_ms big_signdir_oms "model_signing sign key"
  big_row "verify REF --component, 1 MiB file" big_verify_ms big_verify_peer "oras pull + model_signing verify key"
fi

# Issue 6 and 11 rows
if [[ "$BENCH_CUSTODY" != 0 ]]; then
  m=$(median custody_verify_ms)
  b=$(cat "$W/res/custody_verify_ms.bytes")
  limit=$((CUS_COMPONENT_BYTES + 65536))
  met=$(le "$b" "$limit")
  if [[ "$met" != yes ]]; then
    met="**NOT MET**"
    HARD_FAILURES+=("custody verify fetched $b bytes, over the cap of $limit (component + 64 KiB)")
  fi
  row "verify --policy --component, 1 MiB of $MIBS, 6 referrers, 5 rules" "$(secs "$m")" "—" "—" "< 0.10 s" "$(lt "$m" 0.1)"
  row "bytes fetched by that verify" "$b B (component $CUS_COMPONENT_BYTES + $((b - CUS_COMPONENT_BYTES)))" "—" "—" "≤ $limit B (component + 64 KiB)" "$met"
fi
if [[ "$BENCH_UNPACK" != 0 ]]; then
  for kind in tgz tar; do
    a=$(median "unpack_${kind}_ms") t=$(median "unpack_${kind}_tar")
    if [[ $kind == tgz ]]; then
      label="pull + unpack, tar+gzip layer ($(awk -v b="$UNP_TGZ_BYTES" 'BEGIN{printf "%.0f MiB", b/1048576}'), gzip -$BENCH_UNPACK_GZIP_LEVEL)" peer="tar -xzf of the file"
    else
      label="pull + unpack, tar layer ($(awk -v b="$UNP_TAR_BYTES" 'BEGIN{printf "%.0f MiB", b/1048576}'))" peer="tar -xf of the file"
    fi
    r=$(ratio "$a" "$t")
    row "$label, from the registry" "$(secs "$a"), $(max_rss_mb "unpack_${kind}_ms") MB peak" "$peer: $(secs "$t")" "$r" "≤ 1.10× tar -x" "$(le "${r%×}" 1.10)"
    l=$(median "unpack_${kind}_ms_layout")
    r=$(ratio "$l" "$t")
    row "$label, from an OCI layout folder" "$(secs "$l"), $(max_rss_mb "unpack_${kind}_ms_layout") MB peak" "$peer: $(secs "$t")" "$r" "≤ 1.10× tar -x" "$(le "${r%×}" 1.10)"
  done
fi

ver_ms="$("$MS" --version 2>/dev/null | awk '{print $NF}') ($(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'))"
ver_oras="$(oras version | awk '/^Version:/{print $2}')"
ver_oms="$("$TB/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("model-signing"))' 2>/dev/null || echo '?')"
ver_reg="$(docker-registry --version | awk '{print $3}')"
loads="$(paste -sd' ' "$W/res/load")"
TIMINGS=(push_ms push_oras push_curl repush_ms repush_oras pull_ms pull_oras pull_curl signdir_ms signdir_oms signdelta_ms push2k_ms push2k_oras pull2k_ms pull2k_oras inspect2k_ms verify2k_ms signref_ms signref4_ms verify_ms verify_peer "${BIG_TIMINGS[@]}")
TIMINGS+=(custody_verify_ms unpack_tgz_ms unpack_tgz_tar unpack_tar_ms unpack_tar_tar unpack_tgz_ms_layout unpack_tar_ms_layout)
other_total="$(for f in "${TIMINGS[@]}"; do if [[ -f "$W/res/$f" ]]; then cat "$W/res/$f"; fi; done | awk '{w += $1; o += $6} END{printf "%.1f CPU-s during %.1f s of timed commands (%.0f%% of the machine)", o, w, 100*o/w/'"$(nproc)"'}')"

{
  echo "modelsign $ver_ms vs oras $ver_oras, model_signing $ver_oms, curl; distribution $ver_reg on loopback (filesystem storage)."
  echo "Model: $MIBS ($MODEL_BYTES bytes): two $((BENCH_MIB / 2)) MiB weight files, a 1 MiB \`$COMPONENT\`, config.json, tokenizer.json, README.md; pseudo-random, page cache warm."
  echo "Median of $BENCH_RUNS run(s); wall time; peak RSS is the largest of the runs. $(nproc) cores; load average at start $LOAD_START, at end $LOAD_END (1-min at each run: $loads; the benchmark itself keeps both cores busy). Other work on the machine: $IDLE_CHECK of it just before the start; $other_total."
  echo
  echo "| operation | modelsign | peer | ratio (modelsign/peer) | target | met? |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  if [[ "$BENCH_BIG" == 1 ]]; then
    echo "Big model: four $BENCH_BIG_MIB MiB files + the 1 MiB component + config.json; the page cache held (GiB of the $BIGS of the source folder or of the registry's blobs, before each step of each run): $(awk '{printf "%s%s %s", (NR>1 ? ", " : ""), $1, $2}' "$W/res/big_page_cache") on a machine with $(free -g | awk '/^Mem:/{print $2}') GiB of memory. Pushes and signs of the folder ran first; the folder was then deleted, and the pulls and verifies read the registry."
    echo
  fi
  echo "\"Fresh\" push and sign DIR rows pass --no-cache (every byte hashed); re-push and the delta sign use the digest cache."
  echo "The curl rows move bytes only: the PUTs send blobs hashed beforehand, the GETs check no digest;"
  echo "modelsign and oras hash every byte they send or receive. Push is fresh: a repository that has none"
  echo "of the blobs. Bytes fetched are counted by a TCP proxy (HTTP headers included)."
} >"$W/table.md"

{
  cat "$W/table.md"
  echo
  echo "<details><summary>every run: wall s, peak RSS KiB, user s, system s, registry CPU s, CPU s used by everything else meanwhile, MiB of free memory before</summary>"
  echo
  echo '```'
  for f in "${TIMINGS[@]}"; do
    [[ -f "$W/res/$f" ]] && printf '%-12s %s\n' "$f" "$(paste -sd'|' "$W/res/$f" | sed 's/|/ | /g')"
  done
  echo '```'
  echo
  echo "</details>"
} >"$W/bench.md"

mkdir -p "$(dirname "$OUT")"
cp "$W/bench.md" "$OUT"
echo
cat "$W/bench.md"
echo
log "written to $OUT"
if ((${#HARD_FAILURES[@]} > 0)); then
  for f in "${HARD_FAILURES[@]}"; do echo "bench: NOT MET: $f" >&2; done
  exit 1
fi
