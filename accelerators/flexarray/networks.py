"""flexarray's reduction networks: where the products of one step become one sum per virtual neuron.

A virtual neuron (VN) is a run of consecutive multipliers whose products add
up to one output. Both networks take the ``N`` registered products of a step
with its VN markings and deliver up to ``RN_BW`` VN sums on output lanes,
``latency(N)`` cycles later, one step per cycle. The markings travel through
the pipeline with the data, so the mapping may change between two steps.

* :class:`ForwardingAdderNetwork` (``rn=fan``, SIGMA's FAN): a binary tree of
  ``N - 1`` adders, one register level per tree level. Each leaf carries an
  ``end`` bit (its VN ends here). A node keeps the sum of the VN part touching
  its left edge (``prefix``), the part touching its right edge (``suffix``),
  whether it lies inside one VN (``single``), and its one adder's sum
  ``suffix(left) + prefix(right)``: where a VN crosses the node's middle, that
  is the VN's sum as far as the node reaches, and at the lowest common ancestor
  of the VN's first and last multiplier it is the whole VN. The sum of every
  VN therefore appears at exactly one node (a leaf for a VN of one), whatever
  its size or alignment; lane ``j`` picks it up at that node's level, as its
  ``select`` (level, node, enable) says. With a ``reach`` of ``R`` multipliers,
  lane ``j`` only reaches the nodes over its own region of ``R`` multipliers
  (:func:`lane_region`) and that region's ancestors, instead of every node
  (``2R - 1 + log2(N / R)`` candidates instead of ``2N - 1``): the compiler
  then places each VN so that it overlaps its lane's region, which puts its
  lowest common ancestor within reach. This replaces SIGMA's forwarding links
  between neighbouring adders with the per-node prefix/suffix registers: the
  same one adder per node, and VNs that straddle subtrees cost nothing extra.
* :class:`SegmentedSum` (``rn=seq``): the reference, a masked adder tree per
  lane over all products (``lane_of`` per multiplier); ``RN_BW`` times the
  adders, registered per level like the FAN, so both have the same latency.
* :class:`AugmentedReductionTree` (``rn=art``, MAERI's ART): ``N - 1`` adder
  nodes, each with one value going up and one completed-VN register, and a
  forwarding link (one value each way) between neighbouring nodes of a level
  that are not siblings. It keeps no VN markings: each node follows one
  configuration byte (which of its children's values and its cousin's
  forwarded value it adds up, into ``done`` and across the link), computed by
  the compiler (``art.py``), which also says which layouts are legal (all
  layouts of disjoint contiguous VNs). Lanes collect ``done`` values at a
  (level, node) as with the FAN; the same latency.
"""

from amaranth import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ForwardingAdderNetwork", "SegmentedSum", "AugmentedReductionTree", "latency", "tree_levels", "select_layout",
           "lane_of_layout", "lane_region", "reaches", "PRODUCT_WIDTH", "LANE_WIDTH"]

#: An int8 x int8 product fits signed 16 bits (-128 * -128 = 16384).
PRODUCT_WIDTH = 16
LANE_WIDTH = 32


def tree_levels(n):
    """Levels of the reduction tree over ``n`` (a power of two) multipliers."""
    return n.bit_length() - 1


def latency(n):
    """Cycles from products in to VN sums out: one register level per tree level, and the collector."""
    return tree_levels(n) + 1


def select_layout(n):
    """Where a lane collects its VN: tree level (0 = the leaves), node index at that level, enable."""
    return data.StructLayout({"index": max(1, (n - 1).bit_length()), "level": 3 if n <= 128 else 4, "enable": 1})


def lane_region(lane, n, reach):
    """The region (of ``reach`` multipliers, numbered from multiplier 0) lane ``lane`` collects in.

    Lanes go round the ``n / reach`` regions in bit-reversed order (lane 0 in region 0, lane 1 in the
    middle one, ...), so the first ``V`` lanes of a tile are spread evenly over the array whatever ``V``.
    """
    regions = n // reach
    bits = regions.bit_length() - 1
    r = lane % regions
    return int(format(r, f"0{bits}b")[::-1], 2) if bits else 0


def reaches(lane, level, node, n, reach):
    """Whether lane ``lane`` can collect at ``node`` of ``level`` (0 = the leaves) with lanes of ``reach``
    multipliers (0: every lane reaches every node)."""
    if not reach:
        return True
    start = lane_region(lane, n, reach) * reach
    if (1 << level) <= reach:
        return start >> level <= node < (start + reach) >> level
    return node == start >> level


def lane_of_layout(lanes):
    """The lane a multiplier's product goes to in the segmented-sum reference, and whether it counts."""
    return data.StructLayout({"lane": max(1, (lanes - 1).bit_length()), "enable": 1})


def _signature(n, lanes):
    return {
        "valid": In(1),
        "products": In(data.ArrayLayout(signed(PRODUCT_WIDTH), n)),
        "ends": In(n),
        "select": In(data.ArrayLayout(select_layout(n), lanes)),
        "lane_of": In(data.ArrayLayout(lane_of_layout(lanes), n)),
        "out_valid": Out(1),
        "sums": Out(data.ArrayLayout(signed(LANE_WIDTH), lanes)),
    }


class ForwardingAdderNetwork(wiring.Component):
    """SIGMA-style forwarding adder network over ``n`` products into ``lanes`` VN-sum lanes (see module doc).

    ``lane_of`` is ignored (it is the segmented-sum reference's marking).
    """

    def __init__(self, *, n, lanes, reach=0):
        self.n, self.lanes, self.reach = n, lanes, reach
        super().__init__(_signature(n, lanes))

    def elaborate(self, platform):
        m = Module()
        n, lanes, levels = self.n, self.lanes, tree_levels(self.n)

        # Level 0: the leaves. A leaf is one VN part; it starts a VN when its left neighbour ends one.
        nodes = []
        for i in range(n):
            nodes.append({"prefix": self.products[i], "suffix": self.products[i], "sum": self.products[i],
                          "single": 1, "end": self.ends[i]})
        valid, select = self.valid, self.select
        collected = [Const(0, signed(1))] * lanes   # nothing collected yet
        for level in range(1, levels + 2):
            stage_valid = Signal(name=f"valid_l{level}")
            m.d.sync += stage_valid.eq(valid)
            stage_select = Signal.like(select, name=f"select_l{level}", reset_less=True)
            m.d.sync += stage_select.eq(select)
            # lanes pick up the sums completed at the level below
            collected = _pick_up(m, select, [node["sum"] for node in nodes], collected, level, n, self.reach)
            if level <= levels:
                width = PRODUCT_WIDTH + level
                merged = []
                for i in range(0, len(nodes), 2):
                    left, right = nodes[i], nodes[i + 1]
                    crossing = ~left["end"]
                    total = Signal(signed(width), name=f"sum_l{level}_{i // 2}")
                    m.d.comb += total.eq(left["suffix"] + right["prefix"])
                    node = {name: Signal(signed(width), name=f"{name}_l{level}_{i // 2}", reset_less=True)
                            for name in ("prefix", "suffix", "sum")}
                    node["single"] = Signal(name=f"single_l{level}_{i // 2}", reset_less=True)
                    node["end"] = Signal(name=f"end_l{level}_{i // 2}", reset_less=True)
                    m.d.sync += [
                        node["sum"].eq(total),
                        node["prefix"].eq(Mux(left["single"] & crossing, total, left["prefix"])),
                        node["suffix"].eq(Mux(right["single"] & crossing, total, right["suffix"])),
                        node["single"].eq(left["single"] & right["single"] & crossing),
                        node["end"].eq(right["end"]),
                    ]
                    merged.append(node)
                nodes = merged
            valid, select = stage_valid, stage_select
        m.d.comb += self.out_valid.eq(valid)
        for j in range(lanes):
            m.d.comb += self.sums[j].eq(collected[j])
        return m


class SegmentedSum(wiring.Component):
    """The reference reduction: per lane, an adder tree over the products marked for it (see module doc)."""

    def __init__(self, *, n, lanes):
        self.n, self.lanes = n, lanes
        super().__init__(_signature(n, lanes))

    def elaborate(self, platform):
        m = Module()
        n, lanes, levels = self.n, self.lanes, tree_levels(self.n)
        valid = self.valid
        terms = [[Mux(self.lane_of[i].enable & (self.lane_of[i].lane == j), self.products[i], 0) for i in range(n)]
                 for j in range(lanes)]
        for level in range(1, levels + 2):
            stage_valid = Signal(name=f"valid_l{level}")
            m.d.sync += stage_valid.eq(valid)
            valid = stage_valid
            width = LANE_WIDTH if level > levels else PRODUCT_WIDTH + level
            for j in range(lanes):
                values = terms[j]
                pairs = [values[i] + values[i + 1] for i in range(0, len(values), 2)] if level <= levels else values
                held = []
                for index, value in enumerate(pairs):
                    register = Signal(signed(width), name=f"seq{j}_l{level}_{index}", reset_less=True)
                    m.d.sync += register.eq(value)
                    held.append(register)
                terms[j] = held
        m.d.comb += self.out_valid.eq(valid)
        for j in range(lanes):
            m.d.comb += self.sums[j].eq(terms[j][0])
        return m


class AugmentedReductionTree(wiring.Component):
    """MAERI-style augmented reduction tree over ``n`` products into ``lanes`` VN-sum lanes (see the module doc
    and ``art.py``): ``nodes`` holds one configuration byte per adder node (level 1 first); ``ends`` and
    ``lane_of`` are ignored."""

    def __init__(self, *, n, lanes):
        self.n, self.lanes = n, lanes
        signature = _signature(n, lanes)
        signature["nodes"] = In(data.ArrayLayout(8, max(1, n - 1)))
        super().__init__(signature)

    def elaborate(self, platform):
        from .art import node_offset, UP_U0, UP_U1, UP_F, DONE_U0, DONE_U1, DONE_F, LAT_U0, LAT_U1
        m = Module()
        n, lanes, levels = self.n, self.lanes, tree_levels(self.n)
        ups = [self.products[i] for i in range(n)]
        dones = ups
        valid, select = self.valid, self.select
        # the configuration bytes of the levels still ahead travel with the data, one register level a level
        config = [self.nodes[i] for i in range(n - 1)]
        collected = [Const(0, signed(1))] * lanes   # nothing collected yet

        def bit(byte, mask):
            return byte[mask.bit_length() - 1]

        for level in range(1, levels + 2):
            stage_valid = Signal(name=f"valid_l{level}")
            m.d.sync += stage_valid.eq(valid)
            stage_select = Signal.like(select, name=f"select_l{level}", reset_less=True)
            m.d.sync += stage_select.eq(select)
            collected = _pick_up(m, select, dones, collected, level, n)
            if level <= levels:
                count, base = n >> level, node_offset(n, level)
                here = config[base:base + count]
                # a value at this level is a contiguous piece of one VN reaching at most a node's width past
                # each of its edges (into its sibling's and its cousin's side): at most 4 * 2**level products
                width = min(PRODUCT_WIDTH + levels, PRODUCT_WIDTH + level + 2)
                lat, both = [], []
                for x in range(count):
                    u0, u1, c = ups[2 * x], ups[2 * x + 1], here[x]
                    outer = u0 if x % 2 == 0 else u1
                    total = Signal(signed(width), name=f"sum_l{level}_{x}")
                    forward = Signal(signed(width), name=f"lat_l{level}_{x}")
                    m.d.comb += total.eq(u0 + u1)
                    if level == 1:
                        # two products, maybe of two VNs: both, or the outer one alone, go across
                        m.d.comb += forward.eq(Mux(bit(c, LAT_U0) & bit(c, LAT_U1), total,
                                                   Mux(bit(c, LAT_U0) | bit(c, LAT_U1), outer, 0)))
                    else:
                        # above level 1 both children carry the VN crossing this node's middle (or nothing,
                        # a zero): their sum goes wherever any child bit says
                        m.d.comb += forward.eq(Mux(bit(c, LAT_U0) | bit(c, LAT_U1), total, 0))
                    both.append(total)
                    lat.append(forward)
                new_ups, new_dones = [], []
                for x in range(count):
                    u0, u1, c = ups[2 * x], ups[2 * x + 1], here[x]
                    inner, outer = (u1, u0) if x % 2 == 0 else (u0, u1)
                    cousin = x + 1 if x % 2 else x - 1
                    f = lat[cousin] if 0 <= cousin < count else Const(0, signed(width))
                    up = Signal(signed(width), name=f"up_l{level}_{x}", reset_less=True)
                    done = Signal(signed(width), name=f"done_l{level}_{x}", reset_less=True)
                    # the children's sum plus the cousin's value, where the VN continues there
                    joined = Signal(signed(width), name=f"joined_l{level}_{x}")
                    m.d.comb += joined.eq(both[x] + f)
                    up_any, done_any = bit(c, UP_U0) | bit(c, UP_U1), bit(c, DONE_U0) | bit(c, DONE_U1)
                    if level == 1:
                        # one product alone goes up only from the inner child, and completes only from the
                        # outer one, with the cousin's part
                        alone = Signal(signed(width), name=f"alone_l{level}_{x}")
                        m.d.comb += alone.eq(outer + f)
                        up_both, done_both = bit(c, UP_U0) & bit(c, UP_U1), bit(c, DONE_U0) & bit(c, DONE_U1)
                        m.d.sync += [
                            up.eq(Mux(up_both, Mux(bit(c, UP_F), joined, both[x]), Mux(up_any, inner, 0))),
                            done.eq(Mux(done_both, Mux(bit(c, DONE_F), joined, both[x]), Mux(done_any, alone, 0))),
                        ]
                    else:
                        m.d.sync += [
                            up.eq(Mux(up_any, Mux(bit(c, UP_F), joined, both[x]), 0)),
                            done.eq(Mux(done_any, Mux(bit(c, DONE_F), joined, both[x]), 0)),
                        ]
                    new_ups.append(up)
                    new_dones.append(done)
                ups, dones = new_ups, new_dones
                ahead = []
                for i in range(base + count, n - 1):
                    byte = Signal(8, name=f"node_cfg_l{level}_{i}", reset_less=True)
                    m.d.sync += byte.eq(config[i])
                    ahead.append(byte)
                config = [None] * (base + count) + ahead
            valid, select = stage_valid, stage_select
        m.d.comb += self.out_valid.eq(valid)
        for j in range(lanes):
            m.d.comb += self.sums[j].eq(collected[j])
        return m


def _pick_up(m, select, below, collected, level, n, reach=0):
    """Each lane's register at ``level``: the sum completed at the level below that its selection names,
    else what it collected already. With a ``reach``, a lane chooses only among the nodes of its region
    (by the low bits of the node index) or takes its region's one ancestor at that level."""
    picked = []
    everything = Array(below)
    # a lane's register is only as wide as the widest sum it can hold by now (the level's sums), not the
    # 32 bits of the output: at 64 lanes and 7 levels that is 5,800 flip-flops and hold multiplexers fewer
    width = max(len(v) for v in below)
    for j, held in enumerate(collected):
        lane = Signal(signed(max(width, len(held))), name=f"lane{j}_l{level}", reset_less=True)
        take = select[j].enable & (select[j].level == level - 1)
        if not reach:
            value = everything[select[j].index]
        else:
            start, span = lane_region(j, n, reach) * reach, 1 << (level - 1)
            if span <= reach:
                count = reach // span
                local = below[start // span:start // span + count]
                value = Array(local)[select[j].index[:count.bit_length() - 1]] if count > 1 else local[0]
            else:
                value = below[start // span]
        m.d.sync += lane.eq(Mux(take, value, held))
        picked.append(lane)
    return picked
