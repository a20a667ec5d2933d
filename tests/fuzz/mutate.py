"""Structure-aware damage to real frames, as hypothesis strategies.

A frame is decoded to its JSON tree, then a few nodes are replaced, removed, re-typed, wrapped
or multiplied, and the tree is written back (with the stdlib encoder, which can write what
orjson refuses: integers beyond 64 bits, NaN, lone surrogates). Some frames are then damaged
as text as well (cut short, a byte changed). The values are the ones that break parsers:
wrong types, huge and negative numbers, NaN-like and exponent strings, odd digits, deep
nesting, unicode.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]

# fmt: off
NASTY_NUMBERS: list[int | float] = [
    0, -1, 1, 7, -(2**63), 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**19, -(10**30), 10**400,
    0.0, -0.0, 0.1, 1.5, -2.5, 1e-300, 1e300, 5e-324, 1.7976931348623157e308, 123456789.123456789,
]
NASTY_TEXT: list[str] = [
    "", " ", "0", "-0", "-1", "1.", ".5", "1e5", "1E+19", "1e999999", "1e-999999", "1e99999",
    "-1e999999999", "9" * 25, "9" * 5000, "0." + "0" * 40 + "1", "1" + "0" * 30, "NaN", "nan",
    "-nan", "sNaN", "Infinity", "-Infinity", "inf", "0x1F", "1_000", " 12 ", "12\n", "+5",
    "١٢٣", "²", "½", "\U0001d7d7", "\x00", "é", "\u202e", "🚀", "true", "null", "[]", "{}",
    "buy", "sell", "Buy", "Sell", "ASK", "BID", "snapshot", "update", "delta", "message",
    "trade", "orderbook", "book", "l2update", "match", "SNAPSHOT", "REALTIME",
    "2023-10-06T17:35:55.440295Z", "9999-12-31T23:59:59.999999999Z", "0001-01-01T00:00:00Z",
    "2023-13-45T99:99:99Z", "2023-10-06T17:35:55", "2023-10-06 17:35:55Z", "2023-10-06T1:3:5Z",
]


def nesting(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"x": value}
    return value


NASTY_VALUES: list[Any] = [
    None, True, False, *NASTY_NUMBERS, *NASTY_TEXT,
    [], {}, [[]], [{}], [["1", "2"]], [["1", "2", "3", "4", "5"]], [[1e300, -1]], [None, None],
    {"a": 1}, nesting(40), nesting(200),
]
# fmt: on

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(tree: Any, prefix: Path = ()) -> list[Path]:
    """Every node's path in ``tree``, the root included."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.extend(paths(v, (*prefix, k)))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out.extend(paths(v, (*prefix, i)))
    return out


def get(tree: Any, path: Path) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def replace(tree: Any, path: Path, value: Any) -> Any:
    """``tree`` with the node at ``path`` replaced (a new tree; the root may be replaced)."""
    if not path:
        return value
    parent = get(tree, path[:-1])
    parent[path[-1]] = value
    return tree


def retype(value: Any) -> Any:
    """The same content as another JSON type: numbers as text and back, containers swapped."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return [value]
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


@st.composite
def mutated_tree(draw: st.DrawFn, tree: Any) -> Any:
    """``tree`` (already a private copy) after one to three structural mutations."""
    for _ in range(draw(st.integers(1, 3))):
        every = paths(tree)
        path = every[draw(st.integers(0, len(every) - 1))]
        node = get(tree, path)
        kind = draw(
            st.sampled_from(["nasty", "random", "delete", "retype", "wrap", "multiply", "add_key"])
        )
        if kind == "nasty":
            tree = replace(tree, path, copy.deepcopy(draw(st.sampled_from(NASTY_VALUES))))
        elif kind == "random":
            tree = replace(tree, path, draw(json_values))
        elif kind == "delete" and path:
            parent = get(tree, path[:-1])
            del parent[path[-1]]
        elif kind == "retype":
            tree = replace(tree, path, retype(node))
        elif kind == "wrap":
            shape = draw(st.sampled_from(["list", "dict", "pair"]))
            wrapped = {"list": [node], "dict": {"data": node}, "pair": [node, copy.deepcopy(node)]}
            tree = replace(tree, path, wrapped[shape])
        elif kind == "multiply" and isinstance(node, list) and node:
            n = draw(st.sampled_from([2, 50, 300]))
            tree = replace(tree, path, [copy.deepcopy(v) for v in node for _ in range(n)])
        elif kind == "add_key" and isinstance(node, dict):
            node[draw(st.text(max_size=8))] = copy.deepcopy(draw(st.sampled_from(NASTY_VALUES)))
    return tree


def dumps(tree: Any) -> str:
    try:
        return json.dumps(tree, ensure_ascii=False)
    except ValueError:  # a circular reference cannot happen; integers beyond str limits can
        return json.dumps(str(tree))


@st.composite
def damaged_text(draw: st.DrawFn, text: str) -> str | bytes:
    """The frame's text cut short, with one character changed, or as invalid UTF-8 bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "bytes", "deep"]))
    if kind == "deep":  # nesting beyond what a JSON decoder follows
        n = draw(st.sampled_from([1100, 5000]))
        return "[" * n + text + "]" * n
    if kind == "truncate" or not text:
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    i = draw(st.integers(0, len(text) - 1))
    c = draw(st.sampled_from(['"', "{", "}", "[", "]", ",", ":", "\\", "0", "-", "\x00", "é"]))
    if kind == "flip":
        return text[:i] + c + text[i + 1 :]
    if kind == "insert":
        return text[:i] + c + text[i:]
    raw = text.encode()
    return raw[:i] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + raw[i:]


@st.composite
def mutated_frame(draw: st.DrawFn, frames: list[str]) -> str | bytes:
    """One of ``frames``, structurally mutated, and sometimes damaged as text too."""
    text = frames[draw(st.integers(0, len(frames) - 1))]
    try:
        tree = json.loads(text)
    except ValueError:  # not JSON (OKX's "pong"): text damage only
        return draw(damaged_text(text))
    text = dumps(draw(mutated_tree(tree)))
    if draw(st.integers(0, 4)) == 0:
        return draw(damaged_text(text))
    # Frames arrive as text or as binary (Upbit): both must be handled.
    return text.encode("utf-8", errors="surrogatepass") if draw(st.booleans()) else text
