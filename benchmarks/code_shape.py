"""The shape of CSFNetLib's code: longest functions, most positional parameters, largest modules.

`python benchmarks/code_shape.py [--top N]` prints three markdown tables (what issue reviews quote).
Positional parameters are those a caller may pass by position (self and cls not counted).
"""

import argparse
import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "CSFNetModule" / "CSFNetLib"


def functions(path: Path):
    """(qualified name, lines, positional parameters) of every function in one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = path.relative_to(LIBRARY.parent).with_suffix("").as_posix().replace("/", ".")

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = [a.arg for a in child.args.posonlyargs + child.args.args if a.arg not in ("self", "cls")]
                yield f"{prefix}{child.name}", child.end_lineno - child.lineno + 1, len(args)
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")

    yield from ((f"{module}.{name}", lines, params) for name, lines, params in walk(tree, ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=6)
    top = parser.parse_args().top
    modules = sorted(LIBRARY.rglob("*.py"))
    found = [f for path in modules for f in functions(path)]
    print("| longest functions | lines |\n|---|---|")
    for name, lines, _ in sorted(found, key=lambda f: -f[1])[:top]:
        print(f"| `{name}` | {lines} |")
    print("\n| most positional parameters | parameters |\n|---|---|")
    for name, _, params in sorted(found, key=lambda f: -f[2])[:top]:
        print(f"| `{name}` | {params} |")
    print("\n| largest modules | lines |\n|---|---|")
    sizes = sorted(((p.relative_to(LIBRARY).as_posix(), len(p.read_text(encoding='utf-8').splitlines()))
                    for p in modules), key=lambda m: -m[1])
    for name, lines in sizes[:top]:
        print(f"| `{name}` | {lines} |")


if __name__ == "__main__":
    main()
