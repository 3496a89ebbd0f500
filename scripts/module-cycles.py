#!/usr/bin/env python3
"""Lists import cycles among the modules under src/ (exit 1 if there is one).

Every `crate::a::b` and `super::` path in a module's non-test code is an edge from that
module to the deepest module the path names (through `pub use` re-exports: `crate::Result`
is an edge to `error`). An edge is lifted to the two siblings under
the modules' common ancestor (ops/sign -> ops/verify stays as is; digest -> sign/oms
becomes digest -> sign), and edges to an ancestor or descendant (a `mod.rs` and its
children) are left out. A cycle is a strongly connected component of two or more siblings.
"""
import os, re, sys

# The crate's src/, or the folder given (the test checks that a planted cycle is caught).
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
modules = {}  # tuple path -> file
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(dirpath, f), root)
        parts = rel[:-3].split(os.sep)
        if parts[-1] == "mod":
            parts = parts[:-1]
        if parts == ["main"]:
            continue  # the binary's root: `mod cli;` and `main`, nothing imported
        if parts == ["lib"]:
            parts = []
        modules[tuple(parts)] = os.path.join(dirpath, f)

def strip_tests(text):
    # Drop `#[cfg(test)] mod tests { ... }` blocks (to the end of the file: they come last).
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    return text[: m.start()] if m else text

def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)

def expand_use(body):
    """`a::{b, c::{d}}` -> [a::b, a::c::d]"""
    body = body.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", body, re.S)
    if not m:
        return [body]
    prefix, inner = m.group(1), m.group(2)
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur); cur = ""; continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    out.append(cur)
    return [p for item in out if item.strip() for p in expand_use(prefix + item.strip())]

_reexports = {}
def reexports(mod):
    """What a module re-exports (`pub use a::{B, C as D};`): name -> path as written."""
    if mod not in _reexports:
        text = strip_comments(strip_tests(open(modules[mod]).read()))
        names = {}
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", text):
            for path in expand_use(m.group(1)):
                path, _, alias = path.partition(" as ")
                names[(alias or path.split("::")[-1]).strip()] = path.strip()
        _reexports[mod] = names
    return _reexports[mod]

def resolve(mod, path, depth=0):
    parts = [p.strip() for p in path.split("::")]
    if parts[0] not in ("crate", "super", "self") and tuple(mod) + (parts[0],) in modules:
        parts = ["self"] + parts  # a child module named bare (in a re-export)
    if parts[0] == "crate":
        base, rest = [], parts[1:]
    elif parts[0] in ("super", "self"):
        base = list(mod if modules[mod].endswith("mod.rs") or not mod else mod)
        if modules[mod].endswith("mod.rs") or not mod:
            base = list(mod)
        else:
            base = list(mod[:-1]) if parts[0] == "super" else list(mod)
        rest = parts[1:]
        if parts[0] == "super" and modules[mod].endswith("mod.rs"):
            base = base[:-1]
        while rest and rest[0] == "super":
            base = base[:-1]; rest = rest[1:]
    else:
        return None
    target = list(base)
    for p in rest:
        name = re.split(r"\s", p)[0]
        if tuple(target + [name]) in modules:
            target.append(name)
            continue
        # An item the module re-exports (`crate::Error` is `error::Error`): follow it.
        via = reexports(tuple(target)).get(name)
        if via and depth < 8:
            return resolve(tuple(target), via, depth + 1) or tuple(target)
        break
    return tuple(target)

edges = {}
for mod, file in modules.items():
    text = strip_comments(strip_tests(open(file).read()))
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths += expand_use(m.group(1))
    paths += re.findall(r"\b((?:crate|super)(?:::\w+)+)", text)
    for p in paths:
        t = resolve(mod, p)
        if t is None or t == mod:
            continue
        # lift to siblings under the common ancestor
        i = 0
        while i < len(mod) and i < len(t) and mod[i] == t[i]:
            i += 1
        if i == len(mod) or i == len(t):
            continue  # ancestor / descendant
        a, b = mod[: i + 1], t[: i + 1]
        edges.setdefault(a, {}).setdefault(b, set()).add("/".join(mod) + " -> " + p)

# Tarjan
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges.get(v, {}):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1:
            sccs.append(comp)
for v in list(edges):
    if v not in index:
        visit(v)

if not sccs:
    print(f"no import cycles among {len(modules)} modules")
    sys.exit(0)
for comp in sccs:
    names = sorted("/".join(c) for c in comp)
    print("cycle: " + " <-> ".join(names))
    cs = set(comp)
    for a in sorted(cs):
        for b, why in sorted(edges.get(a, {}).items()):
            if b in cs:
                print(f"  {'/'.join(a)} -> {'/'.join(b)}: {sorted(why)[0]}" + (f" (+{len(why)-1})" if len(why) > 1 else ""))
sys.exit(1)
