"""Configuring the augmented reduction tree (``rn=art``, MAERI's ART): which node adds what, per VN layout.

The tree (``networks.AugmentedReductionTree``) has ``N - 1`` adder nodes; node
``x`` at level ``l`` (1 = just above the multipliers, ``log2 N`` = the root)
covers multipliers ``x * 2**l .. (x + 1) * 2**l - 1``. Two neighbouring nodes of
a level that are siblings (``x`` even, ``x + 1``) meet at their parent; two
that are not (``x`` odd, ``x + 1``: *cousins*, in different subtrees) are joined
by a forwarding link, one value each way. Every node sees its children's
``up`` values ``u0`` (left) and ``u1`` (right) and the value its cousin
forwards, ``f``; it registers

* ``up = [u0] + [u1] + [f]``, what goes to its parent,
* ``done = [u0] + [u1] + [f]``, a completed VN sum, which a lane may collect,

and forwards ``lat = [u0] + [u1]`` to its cousin, each term enabled by one
bit of the node's configuration byte (:data:`UP_U0` ...). Above level 1 the
routing below keeps both children's values to one VN (or zero), so there the
hardware adds ``u0 + u1`` once and each output takes that sum (plus ``f``)
when any of its child bits is set: two adders a node (three at level 1,
where a product alone goes up from the inner child or, with ``f``, completes
from the outer one). A node's *inner* edge
is the one it shares with its sibling, its *outer* edge the one it shares with
its cousin.

:func:`configure` routes a VN layout (a list of contiguous multiplier spans)
level by level, holding the invariant that a node's ``up`` carries only (part
of) the VN that crosses its inner edge: a node's pieces of VNs are its
children's ``up`` values (at level 1, its two multipliers' products), merged
when they belong to the same VN; a piece that is the whole VN is ``done``
there; else one that crosses the inner edge goes ``up``; else it crosses the
outer edge and goes over the link to the cousin, which adds it to its own
``up`` (the VN crosses the cousin's inner edge too) or, when the cousin's piece
is the rest of the VN, completes it in its ``done``. A VN of one multiplier is
collected from the products (level 0). So every layout of disjoint contiguous
VNs, any sizes, any alignment, reduces in one pass (:func:`legal`; the tests
check every layout of 4, 8 and 16 multipliers); a layout that is not one of
disjoint, ordered, in-range spans is refused with the reason, as is any node
that would have to carry two VNs (which the invariant rules out).
"""

from ...errors import UnsupportedLayer

__all__ = ["configure", "legal", "evaluate", "check_spans", "node_offset", "UP_U0", "UP_U1", "UP_F", "DONE_U0",
           "DONE_U1", "DONE_F", "LAT_U0", "LAT_U1"]

UP_U0, UP_U1, UP_F, DONE_U0, DONE_U1, DONE_F, LAT_U0, LAT_U1 = (1 << b for b in range(8))


def node_offset(n, level):
    """Index of node 0 of ``level`` (1..log2 n) in the per-node configuration: level 1 first, the root last."""
    return n - (2 * n >> level)


def check_spans(n, spans):
    """Raise :class:`UnsupportedLayer` unless ``spans`` are disjoint runs within ``n`` multipliers, in order."""
    previous = -1
    for a, b in spans:
        if b < a:
            continue                     # an empty VN (no multiplier): its lane adds nothing
        if not 0 <= a <= b < n:
            raise UnsupportedLayer(f"VN {a}..{b} is not within the {n} multipliers")
        if a <= previous:
            raise UnsupportedLayer(f"VN {a}..{b} overlaps or precedes the VN before it (ending at {previous}): "
                                   "VNs are disjoint runs of multipliers in lane order")
        previous = b


def configure(n, spans):
    """(per-node configuration bytes [n - 1], per-span collection point (level, node) or None for an empty
    span) of the augmented reduction tree over ``n`` multipliers for VNs ``spans`` [(first, last)], in lane
    order. Multipliers outside every span are VNs of their own, not collected. Raises
    :class:`UnsupportedLayer` with the reason when the layout cannot be reduced in one pass.
    """
    if n < 2 or n & (n - 1):
        raise UnsupportedLayer(f"the augmented reduction tree needs a power-of-two number of multipliers, not {n}")
    check_spans(n, spans)
    levels = n.bit_length() - 1
    vn_of = list(range(-1, -n - 1, -1))     # unused multipliers: VNs of their own (negative ids)
    size = {}
    for lane, (a, b) in enumerate(spans):
        if b >= a:
            vn_of[a:b + 1] = [lane] * (b - a + 1)
            size[lane] = b - a + 1
    for i, vn in enumerate(vn_of):
        if vn < 0:
            size[vn] = 1
    config = bytearray(max(1, n - 1))
    done_at = {}
    # level 0: a piece per multiplier (vn, multipliers it sums); a VN of one is complete there
    held = []
    for i in range(n):
        if size[vn_of[i]] == 1:
            done_at[vn_of[i]] = (0, i)
            held.append(None)
        else:
            held.append((vn_of[i], 1))

    def crosses(vn, boundary):
        """Whether VN ``vn`` has multipliers on both sides of the boundary before multiplier ``boundary``."""
        return 0 < boundary < n and vn_of[boundary - 1] == vn_of[boundary] == vn

    for level in range(1, levels + 1):
        count, width, base = n >> level, 1 << level, node_offset(n, level)
        up = [None] * count
        lateral = [None] * count        # (vn, count, bits) a node forwards to its cousin
        placed = [[] for _ in range(count)]   # (vn, count, bits, where): where is "up", "done" or "lat"
        for x in range(count):
            lo = x * width
            inner = lo + width if x % 2 == 0 else lo        # the boundary shared with the sibling
            outer = lo if x % 2 == 0 else lo + width        # the boundary shared with the cousin
            root = count == 1
            pieces = {}
            for child, bit in ((held[2 * x], 0), (held[2 * x + 1], 1)):
                if child is not None:
                    vn, total = child
                    old = pieces.get(vn, (0, 0))
                    pieces[vn] = (old[0] + total, old[1] | (1 << bit))
            for vn, (total, bits) in pieces.items():
                if total == size[vn]:
                    where = "done"
                elif not root and crosses(vn, inner):
                    where = "up"
                elif not root and crosses(vn, outer):
                    where = "lat"
                else:
                    raise UnsupportedLayer(f"VN {_name(spans, vn)} would be split at node {x} of level {level} "
                                           f"with no way to the rest of it")
                placed[x].append((vn, total, bits, where))
        # the links: each cousin pair (x odd, x + 1) joins the VN crossing its boundary
        for x in range(count):
            for vn, total, bits, where in placed[x]:
                if where != "lat":
                    continue
                cousin = x + 1 if x % 2 else x - 1
                theirs = {v: (t, b, w) for v, t, b, w in placed[cousin]}
                if vn not in theirs:
                    raise UnsupportedLayer(f"VN {_name(spans, vn)} is split between nodes {min(x, cousin)} and "
                                           f"{max(x, cousin)} of level {level} with nothing of it on one side")
                if theirs[vn][2] == "lat" and x > cousin:
                    continue                   # both sides meet: the left one sends, the right one completes
                lateral[x] = (vn, total, bits)
        for x in range(count):
            byte = 0
            cousin = x + 1 if x % 2 else x - 1
            incoming = lateral[cousin] if 0 <= cousin < count and lateral[cousin] is not None else None
            uses = {}
            for vn, total, bits, where in placed[x]:
                if where == "lat":
                    if lateral[x] is not None and lateral[x][0] == vn:
                        byte |= (LAT_U0 if bits & 1 else 0) | (LAT_U1 if bits & 2 else 0)
                        continue
                    where = "done"             # the cousin's part arrives here: the VN completes
                    if incoming is None or incoming[0] != vn or total + incoming[1] != size[vn]:
                        raise UnsupportedLayer(f"VN {_name(spans, vn)} cannot complete at node {x} of level "
                                               f"{level}")
                if where in uses:
                    raise UnsupportedLayer(f"node {x} of level {level} would need two {where} sums (VNs "
                                           f"{_name(spans, uses[where])} and {_name(spans, vn)})")
                uses[where] = vn
                shift = 0 if where == "up" else 3
                byte |= ((bits & 1) << shift) | ((bits >> 1 & 1) << (shift + 1))
                if incoming is not None and incoming[0] == vn:
                    byte |= 1 << (shift + 2)
                    total += incoming[1]
                if where == "up":
                    up[x] = (vn, total)
                else:
                    if total != size[vn]:
                        raise UnsupportedLayer(f"VN {_name(spans, vn)} is incomplete at node {x} of level {level}")
                    done_at[vn] = (level, x)
            if incoming is not None and incoming[0] not in uses.values():
                raise UnsupportedLayer(f"node {x} of level {level} gets VN {_name(spans, incoming[0])} from its "
                                       "cousin and has nowhere to add it")
            config[base + x] = byte
        held = up
    collect = []
    for lane, (a, b) in enumerate(spans):
        if b < a:
            collect.append(None)
        elif lane not in done_at:
            raise UnsupportedLayer(f"VN {a}..{b} does not complete in one pass")
        else:
            collect.append(done_at[lane])
    return bytes(config[:n - 1]), collect


def _name(spans, vn):
    if vn < 0:
        return f"of multiplier {-vn - 1}"
    a, b = spans[vn]
    return f"{a}..{b}"


def legal(n, spans):
    """(True, "") when the VN layout ``spans`` reduces in one pass on the augmented reduction tree of ``n``
    multipliers, else (False, the reason)."""
    try:
        configure(n, spans)
    except UnsupportedLayer as error:
        return False, str(error)
    return True, ""


def evaluate(n, config, products, collect):
    """What the tree computes (the hardware's rule, in Python): the sum each collection point
    (level, node) of ``collect`` delivers for ``products`` under ``config`` (None: 0). Above level 1 a node's
    two children carry one VN (or nothing), so the hardware adds them whatever its child bits say, and a
    value goes up, completes or crosses when any of its child bits is set; at level 1 one product alone goes
    up only from the inner child and completes or crosses only from the outer one (the only ways the routing
    uses them)."""
    levels = n.bit_length() - 1
    ups, dones = [list(products)], [list(products)]
    for level in range(1, levels + 1):
        count, base = n >> level, node_offset(n, level)
        below = ups[-1]
        def both(c, mask):
            return c & mask == mask

        lat = []
        for x in range(count):
            c, u0, u1 = config[base + x], below[2 * x], below[2 * x + 1]
            outer = u0 if x % 2 == 0 else u1
            if level == 1 and not both(c, LAT_U0 | LAT_U1):
                lat.append(outer if c & (LAT_U0 | LAT_U1) else 0)
            else:
                lat.append(u0 + u1 if c & (LAT_U0 | LAT_U1) else 0)
        up, done = [], []
        for x in range(count):
            c, u0, u1 = config[base + x], below[2 * x], below[2 * x + 1]
            inner, outer = (u1, u0) if x % 2 == 0 else (u0, u1)
            cousin = x + 1 if x % 2 else x - 1
            f = lat[cousin] if 0 <= cousin < count else 0
            if level == 1 and not both(c, UP_U0 | UP_U1):
                up.append(inner if c & (UP_U0 | UP_U1) else 0)         # one product up: the inner one
            else:
                up.append((u0 + u1 + (f if c & UP_F else 0)) if c & (UP_U0 | UP_U1) else 0)
            if level == 1 and not both(c, DONE_U0 | DONE_U1):
                done.append(outer + f if c & (DONE_U0 | DONE_U1) else 0)  # the outer one, with the cousin's
            else:
                done.append((u0 + u1 + (f if c & DONE_F else 0)) if c & (DONE_U0 | DONE_U1) else 0)
        ups.append(up)
        dones.append(done)
    return [0 if point is None else dones[point[0]][point[1]] for point in collect]
