#!/usr/bin/env python3
"""Checks that no module of a crate imports one that imports it back.

For every module with children (a crate root, a `mod.rs`, or `name.rs`
beside a `name/` folder), the children are the nodes of one graph: child A
points at child B when code anywhere under A names something under B
(`use crate::…`, `use super::…`, or a path written inline). Each such graph
must have no cycle, so a crate reads top to bottom at every level. A child
using its parent's own items, or a parent using its children, is the module
tree itself and is not an edge.

Only shipped code counts: items marked `#[cfg(test)]` (test modules above
all) are left out, since tests reach across on purpose.
Names re-exported by a parent (`pub use records::*`) are followed to the
module that defines them.

Usage: module-graph.py CRATE_DIR...   (each with src/lib.rs or src/main.rs)
       module-graph.py --print CRATE_DIR   also prints every graph
Exit status 1 lists each cycle as `a -> b -> a` with a file and the line
that makes each step.
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_code(text):
    """The shipped part of a file with comments and string contents blanked
    (line numbers kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 8]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            j = text.find("'", i + 2 if text[i + 1] != "\\" else i + 3)
            out.append("' '")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return without_tests("".join(out))


def without_tests(code):
    """`code` less each item marked `#[cfg(test)]` (line numbers kept)."""
    while True:
        start = code.find("#[cfg(test)]")
        if start < 0:
            return code
        i = start + len("#[cfg(test)]")
        depth = 0
        while i < len(code):
            c = code[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            elif c == ";" and depth == 0:
                i += 1
                break
            i += 1
        code = code[:start] + "\n" * code.count("\n", start, i) + code[i:]


class Module:
    def __init__(self, path, file, children_dir):
        self.path = path  # tuple of names from the crate root
        self.file = file
        self.children_dir = children_dir
        self.children = {}
        self.code = strip_code(file.read_text()) if file else ""


def load_tree(src):
    root_file = src / "lib.rs" if (src / "lib.rs").exists() else src / "main.rs"
    root = Module((), root_file, src)
    modules = {(): root}
    pending = [root]
    while pending:
        module = pending.pop()
        for match in re.finditer(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", module.code, re.M):
            name = match.group(1)
            base = module.children_dir / name
            if Path(str(base) + ".rs").exists():
                file, children_dir = Path(str(base) + ".rs"), base
            elif (base / "mod.rs").exists():
                file, children_dir = base / "mod.rs", base
            else:
                continue
            child = Module(module.path + (name,), file, children_dir)
            module.children[name] = child
            modules[child.path] = child
            pending.append(child)
    return modules


def expand_use(tree):
    """`a::{b, c::{d, e}}` → ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    prefix, inner = tree[:brace], tree[brace + 1:tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return [p for part in parts if part for p in expand_use(prefix + part)]


def references(module):
    """(line, path as a list of names from the crate root) for each path the
    module's code names."""
    found = []
    code = module.code

    def absolute(segments):
        if segments[0] == "crate":
            return segments[1:]
        if segments[0] in ("super", "self"):
            base = list(module.path)
            while segments and segments[0] in ("super", "self"):
                if segments[0] == "super":
                    base = base[:-1]
                segments = segments[1:]
            return base + segments
        return None

    for match in re.finditer(r"\buse\s+([^;]*);", code):
        line = code.count("\n", 0, match.start()) + 1
        for path in expand_use(match.group(1)):
            path = re.sub(r"\bas\b.*$", "", path.replace("::as", " as"))
            segments = [s for s in path.strip().split("::") if s]
            if segments and segments[0] in ("crate", "super", "self"):
                resolved = absolute([s for s in segments if s != "*"])
                if resolved is not None:
                    found.append((line, resolved))
    for match in re.finditer(r"\b(?:crate|super|self)(?:::" + IDENT + r")+", code):
        before = code[max(0, match.start() - 200):match.start()]
        if re.search(r"\buse\s+[^;]*$", before):
            continue  # part of a use statement, already read
        line = code.count("\n", 0, match.start()) + 1
        resolved = absolute(match.group(0).split("::"))
        if resolved is not None:
            found.append((line, resolved))
    return found


def defines(module, name):
    return re.search(
        r"\b(?:struct|enum|trait|fn|type|const|static|union|macro_rules!)\s+" + re.escape(name) + r"\b",
        module.code,
    ) is not None


def resolve(modules, path, seen=None):
    """The module that `path` (names from the root) lands in."""
    seen = seen or set()
    current = ()
    for i, name in enumerate(path):
        nxt = current + (name,)
        if nxt in modules:
            current = nxt
            continue
        # `name` is an item of `current`, or a name it re-exports.
        module = modules[current]
        key = (current, name)
        if key in seen:
            return current
        seen.add(key)
        for match in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);", module.code):
            for reexport in expand_use(match.group(1)):
                reexport = reexport.strip()
                alias = re.search(r"\bas\s*(" + IDENT + r")$", reexport.replace("::as", " as"))
                target = re.sub(r"\s*as\s*" + IDENT + r"$", "", reexport.replace("::as", " as")).split("::")
                target = [s for s in target if s]
                if not target:
                    continue
                if target[0] in ("crate", "super", "self"):
                    base = [] if target[0] == "crate" else list(current)
                    rest = target[1:] if target[0] == "crate" else target
                    while rest and rest[0] in ("super", "self"):
                        if rest[0] == "super":
                            base = base[:-1]
                        rest = rest[1:]
                    target = base + rest
                else:
                    target = list(current) + target
                if target[-1] == "*":
                    origin = resolve(modules, target[:-1], seen)
                    if defines(modules[origin], name) or any(
                        c.path[-1] == name for c in modules[origin].children.values()
                    ):
                        return resolve(modules, list(origin) + [name] + list(path[i + 1:]), seen)
                elif (alias.group(1) if alias else target[-1]) == name:
                    return resolve(modules, target + list(path[i + 1:]), seen)
        return current
    return current


def sibling_edges(modules):
    """{parent: {(a, b): (file, line)}} for every step between two children."""
    graphs = {}
    for module in modules.values():
        for line, path in references(module):
            target = resolve(modules, path)
            source = module.path
            common = 0
            while common < min(len(source), len(target)) and source[common] == target[common]:
                common += 1
            if common == len(source) or common == len(target):
                continue  # a module and its own ancestor or descendant
            parent = source[:common]
            edge = (source[common], target[common])
            graphs.setdefault(parent, {}).setdefault(edge, (module.file, line))
    return graphs


def cycles(edges):
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def main(args):
    show = "--print" in args
    dirs = [a for a in args if a != "--print"]
    failed = False
    for crate in dirs:
        modules = load_tree(Path(crate) / "src")
        graphs = sibling_edges(modules)
        for parent, edges in sorted(graphs.items()):
            where = "::".join(parent) or "crate"
            if show:
                print(f"{crate} {where}:")
                for (a, b) in sorted(edges):
                    print(f"  {a} -> {b}")
            for cycle in cycles(edges):
                failed = True
                print(f"{crate}: a cycle under {where}: {' -> '.join(cycle)}")
                for a, b in zip(cycle, cycle[1:]):
                    file, line = edges[(a, b)]
                    print(f"    {a} -> {b}: {file}:{line}")
    if failed:
        return 1
    print(f"module graph: no cycles in {len(dirs)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
