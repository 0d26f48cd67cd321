"""Render a phrasing once per distinct input, when its input is only the label, the source and the taxonomy.

Half the renders of a record are questions such as "Describe the {{ attribute.title }} of this image.": their text
depends on a few values that repeat across records (the attribute's name, title and verdict, the label, the
generator), never on the record's own prose. A render is a pure function of its template and of the values it
reads (the sandbox makes every render from the same fresh state, ``lipsum`` is gone, and the limits are counted per
render, without a clock), so the text of the first render with those values is the text of every later one.

Which values a phrasing reads is decided from its syntax tree, conservatively: a phrasing qualifies only if every
variable it reads is in :data:`KEYED` or is ``attribute`` read through a constant key of :data:`ATTRIBUTE_KEYS`,
and it assigns none of those names, uses no filter that draws at random or applies a filter or test named at run
time, and no identity test. Every other phrasing, and every render whose values are not plain strings, booleans
or None, is rendered as before. A failed render is never stored: it fails again, with the same error, the next time.
"""

from __future__ import annotations

from jinja2 import TemplateSyntaxError, meta, nodes

from fakeinstruct.templating.engine.sandbox import environment, render

# Context variables whose values come from the label, the source and the template, not from the record's prose.
KEYED = (
    "label",
    "is_fake",
    "generator",
    "generator_family",
    "answer",
    "options",
    "evidence_points_to",
    "inconclusive",
)
# Keys of an attribute's context whose values come from its name, its verdict and the taxonomy.
ATTRIBUTE_KEYS = frozenset(("name", "title", "verdict", "is_anomalous", "description", "looks_natural"))
ATTRIBUTE_KEYS |= {"looks_anomalous", "fix"}
# random draws from the process's state; the others apply a filter or test named by a value, or compare identities
_REFUSED_FILTERS = frozenset(("random", "map", "select", "reject", "selectattr", "rejectattr"))
_REFUSED_TESTS = frozenset(("sameas",))
# texts kept at most; past this many distinct inputs the memo starts afresh, so memory stays bounded
MAX_TEXTS = 1 << 16
_UNSEEN = object()
_NEVER = object()  # the plan of a phrasing that is always rendered


def key_plan(source: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(context variables, attribute keys) that determine the text of ``source``; None if that is not certain."""
    env = environment()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError:
        return None
    constants = set(env.globals)
    free = meta.find_undeclared_variables(ast)
    if not free <= {*KEYED, "attribute", *constants}:
        return None
    for name in ast.find_all(nodes.Name):
        if name.ctx != "load" and (name.name in KEYED or name.name == "attribute" or name.name in constants):
            return None
    if any(f.name in _REFUSED_FILTERS for f in ast.find_all(nodes.Filter)):
        return None
    if any(t.name in _REFUSED_TESTS for t in ast.find_all(nodes.Test)):
        return None
    keys: set[str] = set()
    if "attribute" in free and not _attribute_reads(ast, None, keys):
        return None
    return tuple(sorted(free & set(KEYED))), tuple(sorted(keys))


def _attribute_reads(node: nodes.Node, parent: nodes.Node | None, keys: set[str]) -> bool:
    """Collect the keys ``attribute`` is read through; False if it is read any other way (passed whole)."""
    if isinstance(node, nodes.Name) and node.name == "attribute":
        if isinstance(parent, nodes.Getattr) and parent.node is node and parent.attr in ATTRIBUTE_KEYS:
            keys.add(parent.attr)
            return True
        if (
            isinstance(parent, nodes.Getitem)
            and parent.node is node
            and isinstance(parent.arg, nodes.Const)
            and parent.arg.value in ATTRIBUTE_KEYS
        ):
            keys.add(parent.arg.value)
            return True
        return False
    return all(_attribute_reads(child, node, keys) for child in node.iter_child_nodes())


def _plain(value):
    """``value`` as part of a key, or _UNSEEN when it is not a plain value. Strings stand for themselves, and the
    rest is wrapped, so that True and 1.0 or "None" and None never make the same key."""
    if type(value) is str:
        return value
    if value is None or value is True or value is False:
        return (value,)
    if type(value) is not list:
        return _UNSEEN
    items = []
    for item in value:  # options: [{letter, text}, ...]
        if type(item) is not dict:
            return _UNSEEN
        for k, v in item.items():
            if type(k) is not str or type(v) is not str:
                return _UNSEEN
        items.append(tuple(item.items()))
    return ("list", *items)


class RenderMemo:
    """Renders phrasings through :func:`fakeinstruct.templating.engine.sandbox.render`, once per distinct key (see the module)."""

    def __init__(self):
        self._plans: dict = {}
        self._texts: dict = {}

    def render(self, phrasing, context: dict, file: str, where: str, index: int) -> str:
        """The text of ``phrasing`` in ``context``; a failure names ``file`` and the field ``where[index]``."""
        compiled = phrasing.compiled
        plan = self._plans.get(compiled)
        if plan is None:
            plan = self._plans[compiled] = key_plan(phrasing.source) or _NEVER
        if plan is not _NEVER:
            key = _key(compiled, plan, context)
            if key is not None:
                text = self._texts.get(key)
                if text is None:
                    text = render(compiled, context, file=file, field=f"{where}[{index}]")
                    if len(self._texts) >= MAX_TEXTS:
                        self._texts.clear()
                    self._texts[key] = text
                return text
        return render(compiled, context, file=file, field=f"{where}[{index}]")


def _key(compiled, plan, context: dict) -> tuple | None:
    names, attribute_keys = plan
    sources = [(context, names)]
    if attribute_keys:
        attribute = context.get("attribute")
        if type(attribute) is not dict:
            return None
        sources.append((attribute, attribute_keys))
    key = [compiled]
    for source, keys in sources:
        for name in keys:
            value = source.get(name, _UNSEEN)
            if type(value) is not str:  # strings, the usual case, stand for themselves
                value = _plain(value)
                if value is _UNSEEN:
                    return None
            key.append(value)
    return tuple(key)
