"""Print the import levels and import cycles of the ``zoo`` package.

Counts every import grimp sees, function-level (lazy) imports included; imports
under ``if TYPE_CHECKING:`` are left out with ``--no-type-checking`` (they never run).

    python scripts/import_graph.py [--no-type-checking] [--depth N]

With ``--depth 2`` modules are collapsed to their layer (``zoo.api``,
``zoo.training``); the default 0 keeps every module apart. Cycles are the
strongly connected components of that graph; the import levels are the
number of nodes on the longest path of the graph after each cycle is condensed
to one node.
"""

from __future__ import annotations

import argparse
import sys

import grimp


def collapse(module: str, depth: int) -> str:
    """Name a module by its first ``depth`` dotted parts (0: the full name)."""
    if depth == 0:
        return module
    return ".".join(module.split(".")[:depth])


def module_graph(depth: int, type_checking: bool) -> dict[str, set[str]]:
    """Edges importer -> imported between the collapsed modules of ``zoo``."""
    graph = grimp.build_graph(
        "zoo", cache_dir=None, exclude_type_checking_imports=not type_checking
    )
    edges: dict[str, set[str]] = {collapse(m, depth): set() for m in graph.modules}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = collapse(module, depth), collapse(imported, depth)
            if a != b and b != "zoo":  # `zoo` itself only re-exports
                edges[a].add(b)
    edges.pop("zoo", None)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), largest first; singletons dropped."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found, key=lambda c: (-len(c), c))


def levels(edges: dict[str, set[str]], components: list[list[str]]) -> int:
    """Nodes on the longest import path once every cycle is one node."""
    owner = {m: i for i, comp in enumerate(components) for m in comp}
    dag: dict[int, set[int]] = {i: set() for i in range(len(components))}
    for a, targets in edges.items():
        for b in targets:
            if owner[a] != owner[b]:
                dag[owner[a]].add(owner[b])
    memo: dict[int, int] = {}

    def depth(node: int) -> int:
        if node not in memo:
            memo[node] = 1 + max((depth(n) for n in dag[node]), default=0)
        return memo[node]

    return max((depth(n) for n in dag), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=0)
    parser.add_argument("--no-type-checking", action="store_true")
    args = parser.parse_args()
    edges = module_graph(args.depth, not args.no_type_checking)
    components = cycles(edges)
    loops = [c for c in components if len(c) > 1]
    print(f"modules: {len(edges)} (depth {args.depth or 'full'})")
    print(f"import levels: {levels(edges, components)}")
    print(f"import cycles: {len(loops)}")
    for comp in loops:
        print("  " + " <-> ".join(comp))


if __name__ == "__main__":
    main()
