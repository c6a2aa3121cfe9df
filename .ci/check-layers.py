#!/usr/bin/env python3
"""herald's architecture invariants, checked from the source's own paths.

Reads the layer table from the `# Layout` doc of src/lib.rs (the fenced
block that starts with ```text and names `layer: modules` per line, top
layer first) and every `crate::` / `super::` / `self::` path in src/, then
fails when:

1. a file imports a file that (directly or through others) imports it back:
   an import cycle between files. A parent `mod.rs` declaring and
   re-exporting its children (`mod x;`, `pub use x::Y;`) is not an import;
2. a file imports from a layer above its own;
3. a file is in no layer of the table, or a table entry in two (a module
   is in the layer of the longest table entry its path starts with);
4. a database crate (rusqlite, tokio_postgres, deadpool_postgres, postgres)
   is named outside src/store/.

Run: python3 .ci/check-layers.py             (exit 1 with each finding on stderr)
     python3 .ci/check-layers.py --graph      (also print the file graph)
     python3 .ci/check-layers.py --self-test  (plants each kind of violation in
                                               a copy of src/ and fails unless
                                               every one is reported)
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")
DB_CRATES = ("rusqlite", "tokio_postgres", "deadpool_postgres", "postgres")
STORE_DIR = "store"


def strip_code(text):
    """The source without comments, string and char literals (kept as blanks
    of the same length, so offsets and lines stay)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif (c == "r" or text.startswith("br", i)) and re.match(r"b?r#*\"", text[i:]) and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            m = re.match(r"b?r(#*)\"", text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        elif c == "'":
            # a char literal ('a', '\n', '\u{1F600}') or a lifetime ('a)
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(path):
    """src/store/events.rs -> ('store', 'events'); src/store/mod.rs -> ('store',)."""
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel == ["lib"]:
        return ()
    return tuple(rel)


def expand_use(tree):
    """`crate::{a::B, c::{d, e as f}}` -> ['crate::a::B', 'crate::c::d', 'crate::c::e']."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+(\w+)", r"@\1", tree))
    depth, start = 0, None
    for k, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = k
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix, inner, rest = tree[:start], tree[start + 1 : k], tree[k + 1 :]
                parts, d, last = [], 0, 0
                for m, c2 in enumerate(inner):
                    if c2 == "{":
                        d += 1
                    elif c2 == "}":
                        d -= 1
                    elif c2 == "," and d == 0:
                        parts.append(inner[last:m])
                        last = m + 1
                parts.append(inner[last:])
                result = []
                for p in parts:
                    if p:
                        result.extend(expand_use(prefix + p + rest))
                return result
    return [tree]


class File:
    def __init__(self, path):
        self.path = path
        self.module = module_of(path)
        self.is_mod_rs = path.endswith("mod.rs") or path.endswith("lib.rs")
        with open(path, encoding="utf-8") as f:
            self.raw = f.read()
        self.code = strip_code(self.raw)
        self.reexports = {}  # item name -> child module tuple
        self.children = set()


def inline_mod_depth(code):
    """For each offset, how many inline `mod x { … }` blocks enclose it."""
    depths = [0] * (len(code) + 1)
    stack, depth = [], 0
    mod_open = set(m.end() - 1 for m in re.finditer(r"\bmod\s+\w+\s*\{", code))
    for i, ch in enumerate(code):
        if ch == "{":
            stack.append(i in mod_open)
            if i in mod_open:
                depth += 1
        elif ch == "}" and stack:
            if stack.pop():
                depth -= 1
        depths[i] = depth
    return depths


def main():
    show_graph = "--graph" in sys.argv
    files = {}
    for dirpath, _, names in os.walk(SRC):
        for name in names:
            if name.endswith(".rs") and name != "main.rs":
                f = File(os.path.join(dirpath, name))
                files[f.module] = f
    main_rs = os.path.join(SRC, "main.rs")
    findings = []

    # Re-exports of each parent module: `pub use child::{A, B}` / `pub use self::child::A`.
    for f in files.values():
        if not f.is_mod_rs:
            continue
        for m in re.finditer(r"\bmod\s+(\w+)\s*;", f.code):
            f.children.add(m.group(1))
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", f.code):
            for p in expand_use(m.group(1)):
                segs = [s for s in p.split("@")[0].split("::") if s]
                if segs and segs[0] == "self":
                    segs = segs[1:]
                if len(segs) >= 2 and segs[0] in f.children:
                    f.reexports[segs[-1]] = f.module + (segs[0],)

    def resolve(segs):
        """Path segments below the crate root -> the file module they land in."""
        mod = ()
        for k, s in enumerate(segs):
            if mod + (s,) in files:
                mod = mod + (s,)
                continue
            f = files.get(mod)
            if f and s in f.reexports:
                return resolve(list(f.reexports[s]) + segs[k + 1 :])
            break
        return mod

    # Edges between files.
    edges = {m: {} for m in files}
    for f in files.values():
        depths = inline_mod_depth(f.code)
        uses = []
        for m in re.finditer(r"\buse\s+([^;]+);", f.code):
            is_pub_reexport = re.search(r"\bpub(\([^)]*\))?\s+$", f.code[max(0, m.start() - 20) : m.start()])
            for p in expand_use(m.group(1)):
                uses.append((m.start(), p, bool(is_pub_reexport)))
        for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)(?!\w|::)", f.code):
            uses.append((m.start(), m.group(1), False))
        # A parent naming its own child in code (`webhooks::list`): an import.
        if f.children:
            names = "|".join(sorted(f.children))
            use_spans = [(m.start(), m.end()) for m in re.finditer(r"\buse\s+[^;]+;", f.code)]
            for m in re.finditer(r"(?<![\w:])((?:%s)(?:::\w+)+)(?!\w|::)" % names, f.code):
                if not any(a <= m.start() < b for a, b in use_spans):
                    uses.append((m.start(), m.group(1), False))
        def absolute(off, p):
            """A path as written at `off` -> segments below the crate root, or
            None for a path outside the crate (std, other crates)."""
            segs = [s for s in p.split("::") if s and s != "*"]
            if not segs:
                return None
            base = list(f.module)
            if segs[0] == "crate":
                return segs[1:]
            if segs[0] in ("super", "self"):
                inline = depths[off]
                while segs and segs[0] in ("super", "self"):
                    if segs[0] == "super":
                        if inline:
                            inline -= 1
                        else:
                            base = base[:-1]
                    segs = segs[1:]
                if inline:  # a path inside an inline test module that stays inside it
                    return None
                return base + segs
            if f.is_mod_rs and segs[0] in f.children:
                return list(f.module) + segs
            return None

        # A `use` that names a module makes its name (or alias) a path of
        # its own: `use crate::spec; … spec::webhook::X`.
        aliases = {}
        for off, p, reexport in uses:
            path, _, alias = p.partition("@")
            segs = absolute(off, path)
            if segs and not reexport and tuple(segs) in files and tuple(segs) != f.module:
                aliases[alias or segs[-1]] = segs
        if aliases:
            use_spans = [(m.start(), m.end()) for m in re.finditer(r"\buse\s+[^;]+;", f.code)]
            pattern = r"(?<![\w:])(%s)((?:::\w+)+)(?!\w|::)" % "|".join(map(re.escape, sorted(aliases)))
            for m in re.finditer(pattern, f.code):
                if not any(a <= m.start() < b for a, b in use_spans):
                    uses.append((m.start(), "crate::" + "::".join(aliases[m.group(1)]) + m.group(2), False))
        for off, p, reexport in uses:
            segs = absolute(off, p.partition("@")[0])
            if segs is None:
                continue
            target = resolve(segs)
            if target == f.module or target not in files:
                continue
            # A parent declaring and re-exporting its own children is no import.
            if reexport and target[: len(f.module)] == f.module:
                continue
            line = f.code.count("\n", 0, off) + 1
            edges[f.module].setdefault(target, line)

    # Database crates only in the store.
    for f in list(files.values()) + [File(main_rs)]:
        if f.module[:1] == (STORE_DIR,):
            continue
        for m in re.finditer(r"(?<!\w)(rusqlite|tokio_postgres|deadpool_postgres)\b|(?<![\w:])(postgres)::", f.code):
            line = f.code.count("\n", 0, m.start()) + 1
            findings.append(f"{rel(f.path)}:{line}: names the database crate `{m.group(1) or m.group(2)}` outside src/{STORE_DIR}/")

    # Cycles (Tarjan's strongly connected components).
    index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    for comp in sccs:
        comp_set = set(comp)
        lines = []
        for v in sorted(comp):
            for w, line in sorted(edges[v].items()):
                if w in comp_set:
                    lines.append(f"    {rel(files[v].path)}:{line} -> {rel(files[w].path)}")
        findings.append("import cycle between " + ", ".join(rel(files[v].path) for v in sorted(comp)) + ":\n" + "\n".join(lines))

    # Layers from lib.rs's layout doc.
    lib = files[()].raw
    block = re.search(r"//! ```text\n((?://!.*\n)*?)//! ```", lib)
    if not block:
        findings.append("src/lib.rs: no ```text layer table in the # Layout doc")
    else:
        layer_of, order = {}, []  # module path (tuple) -> layer name
        for row in block.group(1).splitlines():
            row = row[3:].strip()
            m = re.match(r"(\w+)\s*:\s*(.*)$", row)
            if not m:
                continue
            name, mods = m.group(1), m.group(2).split()
            order.append(name)
            for mod in mods:
                path = tuple(mod.split("::"))
                if path in layer_of:
                    findings.append(f"src/lib.rs: module `{mod}` is in two layers ({layer_of[path]}, {name})")
                layer_of[path] = name
                if path not in files:
                    findings.append(f"src/lib.rs: the layout table names `{mod}`, which is no module of src/")
        rank = {name: len(order) - k for k, name in enumerate(order)}  # top layer first

        def layer(module):
            """The layer of the longest table path that `module` starts with."""
            for k in range(len(module), 0, -1):
                if module[:k] in layer_of:
                    return layer_of[module[:k]]
            return None

        for v in sorted(files):
            if v and layer(v) is None:
                findings.append(f"{rel(files[v].path)}: in no layer of the layout table in src/lib.rs")
        for v, targets in sorted(edges.items()):
            lv = layer(v)
            for w, line in sorted(targets.items()):
                lw = layer(w)
                if lv and lw and rank[lw] > rank[lv]:
                    findings.append(
                        f"{rel(files[v].path)}:{line}: {lv} imports {lw} ({rel(files[w].path)}), a layer above it"
                    )

    if show_graph:
        for v in sorted(edges):
            for w in sorted(edges[v]):
                print(f"{'::'.join(v) or 'lib'} -> {'::'.join(w) or 'lib'}")
    if findings:
        for x in findings:
            print(x, file=sys.stderr)
        print(f"\n{len(findings)} architecture finding(s); see the layer table in src/lib.rs", file=sys.stderr)
        return 1
    print(f"layers: {len(files)} files, no import cycle, no import up a layer, database crates only in src/{STORE_DIR}/")
    return 0


def rel(path):
    return os.path.relpath(path, ROOT)


def self_test():
    """Plants one violation of each rule in a copy of src/ and checks that
    the checker reports it (and that the clean copy passes)."""
    import shutil
    import subprocess
    import tempfile

    plants = [
        ("a cycle through a store file", "src/store/events.rs", "\nfn _planted() { let _ = crate::pipeline::router::route_all; }\n", "import cycle"),
        ("an import up a layer", "src/spec/field.rs", "\nfn _planted() { let _ = crate::engines::render::check; }\n", "a layer above it"),
        ("a cycle inside one layer", "src/spec/field.rs", "\nuse crate::spec::webhook::DEFAULT_TIMEOUT;\n", "import cycle"),
        ("a database crate outside the store", "src/pipeline/router.rs", "\nfn _planted(_: rusqlite::Error) {}\n", "database crate"),
        ("a module in no layer", "src/lib.rs", "\npub mod planted;\n", "in no layer"),
        ("a database crate by absolute path", "src/app/mod.rs", "\nuse ::rusqlite as db;\n", "database crate"),
        ("a child reaching back into a parent that calls it", "src/surfaces/cli/input.rs", "\nfn _planted() { let _ = super::run; }\n", "import cycle"),
        ("a grouped use tree inside one layer (no finding)", "src/surfaces/shared/state.rs", "\n#[allow(unused_imports)]\nuse crate::surfaces::shared::{error::ApiError as _Planted};\n", None),
        ("a cycle through a module alias", "src/spec/field.rs", "\nuse crate::spec;\nfn _planted() { let _ = spec::webhook::DEFAULT_TIMEOUT; }\n", "import cycle"),
        ("a cycle through a renamed module", "src/spec/field.rs", "\nuse crate::spec::webhook as w;\nfn _planted() { let _ = w::DEFAULT_TIMEOUT; }\n", "import cycle"),
        ("a grouped use tree up a layer", "src/base/event.rs", "\nuse crate::spec::{field::FieldError, webhook::DEFAULT_TIMEOUT};\n", "a layer above it"),
    ]
    me = os.path.abspath(__file__)
    failures = 0
    for label, path, text, expect in [("the clean tree", None, None, None)] + plants:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(SRC, os.path.join(tmp, "src"))
            os.makedirs(os.path.join(tmp, ".ci"))
            shutil.copy(me, os.path.join(tmp, ".ci", "check-layers.py"))
            if path:
                with open(os.path.join(tmp, path), "a", encoding="utf-8") as f:
                    f.write(text)
                if path == "src/lib.rs":
                    open(os.path.join(tmp, "src", "planted.rs"), "w").close()
            r = subprocess.run([sys.executable, os.path.join(tmp, ".ci", "check-layers.py")], capture_output=True, text=True)
            ok = r.returncode == 0 if expect is None else (r.returncode == 1 and expect in r.stderr)
            print(f"{'ok  ' if ok else 'FAIL'} {label}")
            if not ok:
                failures += 1
                print(r.stdout + r.stderr, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(self_test() if "--self-test" in sys.argv else main())
