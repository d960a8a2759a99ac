#!/usr/bin/env python3
"""tests/call_cycles.py: fails when the .c files of a folder call each other in a circle.

STYLE.md: "Files call each other in one direction: no circle among a folder's
files." For each FOLDER given, the production .c files (file names holding
_test, fixture, bench or testutil are left out) form a graph: A.c -> B.c when
A.c names, outside comments and string literals, a function that B.c defines
without `static` (a definition starts at column 0, is not `static`, and its
parameter list is followed by `{` on the same or the next line; the first file
to define a name owns it). Every strongly connected component of more than one
file is a circle, printed as

    circle: a.c b.c
    N circles (M files) among K .c files of FOLDER

Usage: call_cycles.py FOLDER...   Exit status 1 when any folder has a circle,
2 for a folder that does not exist, else 0. Python 3 standard library only.
"""
import os
import re
import sys

LEFT_OUT = ("_test", "fixture", "bench", "testutil")
COMMENTS_AND_STRINGS = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\])*"', re.S)
DEFINITION = re.compile(
    r'^(?!static\b)(?![ \t#}])[A-Za-z_][\w \t*]*?\b(\w+)\s*\([^;{]*\)\s*\{', re.M)
NOT_FUNCTIONS = {"if", "while", "for", "switch", "return", "main"}
IDENTIFIER = re.compile(r'\b[A-Za-z_]\w*\b')


def call_graph(folder):
    files = sorted(f for f in os.listdir(folder)
                   if f.endswith(".c") and not any(w in f for w in LEFT_OUT))
    code = {}
    for f in files:
        with open(os.path.join(folder, f), errors="replace") as src:
            code[f] = COMMENTS_AND_STRINGS.sub(" ", src.read())
    owner = {}
    for f in files:
        for m in DEFINITION.finditer(code[f]):
            if m.group(1) not in NOT_FUNCTIONS:
                owner.setdefault(m.group(1), f)
    return {f: {owner[w] for w in set(IDENTIFIER.findall(code[f]))
                if w in owner and owner[w] != f} for f in files}


def circles(graph):
    """Tarjan's strongly connected components, iteratively; those of 2+ files."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return sorted(found)


def main(folders):
    if not folders:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    status = 0
    for folder in folders:
        folder = folder.rstrip("/")
        if not os.path.isdir(folder):
            print(f"call_cycles: no folder {folder}", file=sys.stderr)
            return 2
        graph = call_graph(folder)
        comps = circles(graph)
        for comp in comps:
            print("circle:", " ".join(comp))
        print(f"{len(comps)} circles ({sum(len(c) for c in comps)} files) "
              f"among {len(graph)} .c files of {folder}")
        if comps:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
