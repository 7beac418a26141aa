"""Register declarations shared by gateware and host.

A :class:`RegisterMap` is plain data: the shell builds its AXI4-Lite decoder from
it and the driver reads and writes registers by name through the same object,
so an offset is written down exactly once.
"""

from dataclasses import dataclass, field

__all__ = ["Register", "RegisterMap", "SHELL_REGISTERS", "CONFIG_BASE", "ID_MAGIC", "ACCESS_KINDS", "CTRL_START",
           "CTRL_ABORT", "STATUS_BUSY", "STATUS_DONE", "STATUS_INPUT_SHORT", "STATUS_INPUT_LONG",
           "INTERRUPT_DONE"]

#: Value of the ID register: ASCII "AKIT", so a host can tell it found an accelkit shell.
ID_MAGIC = 0x414B4954
#: What a register's ``access`` may be.
ACCESS_KINDS = ("rw", "ro", "wo", "w1c")

#: CTRL bits.
CTRL_START, CTRL_ABORT = 1 << 0, 1 << 1
#: STATUS bits: busy, done, and why the last job ended in error (cleared by the next start).
STATUS_BUSY, STATUS_DONE, STATUS_INPUT_SHORT, STATUS_INPUT_LONG = 1 << 0, 1 << 1, 1 << 2, 1 << 3
#: Interrupt bits of IER and ISR (``ap_ctrl_hs`` numbering: bit 0 is "done").
INTERRUPT_DONE = 1 << 0

#: First byte offset of accelerator-specific registers; shell registers sit below.
CONFIG_BASE = 0x40


@dataclass(frozen=True)
class Register:
    """One 32-bit register.

    ``access`` is ``"rw"`` (host writes, gateware reads), ``"ro"`` (gateware
    drives, host reads), ``"wo"`` (write-only strobe, reads return 0) or
    ``"w1c"`` (gateware sets bits, the host reads them and clears a bit by
    writing 1 to it, like an interrupt status register).
    ``width`` is the number of meaningful bits; ``signed`` tells the host how to
    interpret a read and how to encode a negative write.
    """

    name: str
    offset: int
    access: str = "rw"
    width: int = 32
    signed: bool = False
    doc: str = ""

    def __post_init__(self):
        if self.access not in ACCESS_KINDS:
            raise ValueError(f"register {self.name}: access must be one of {', '.join(ACCESS_KINDS)}, "
                             f"not {self.access!r}")
        if self.offset % 4:
            raise ValueError(f"register {self.name}: offset must be a multiple of 4, not {self.offset:#x}")
        if not 1 <= self.width <= 32:
            raise ValueError(f"register {self.name}: width must be 1..32, not {self.width}")

    def encode(self, value: int) -> int:
        """Host value to the 32-bit bus word; raises ``ValueError`` when it does not fit."""
        lo, hi = (-(1 << (self.width - 1)), (1 << (self.width - 1)) - 1) if self.signed else (0, (1 << self.width) - 1)
        if not lo <= value <= hi:
            raise ValueError(f"register {self.name}: value {value} does not fit {self.width} "
                             f"{'signed' if self.signed else 'unsigned'} bits ({lo}..{hi})")
        return value & 0xFFFF_FFFF

    def decode(self, word: int) -> int:
        """32-bit bus word to the host value."""
        word &= (1 << self.width) - 1
        if self.signed and word >> (self.width - 1):
            word -= 1 << self.width
        return word


@dataclass(frozen=True)
class RegisterMap:
    """An ordered, name-addressable set of registers with unique offsets."""

    registers: tuple = field(default_factory=tuple)

    def __post_init__(self):
        names, offsets = set(), set()
        for reg in self.registers:
            if reg.name in names:
                raise ValueError(f"register name {reg.name!r} declared twice")
            if reg.offset in offsets:
                raise ValueError(f"register offset {reg.offset:#x} declared twice ({reg.name})")
            names.add(reg.name)
            offsets.add(reg.offset)

    def __getitem__(self, name) -> Register:
        for reg in self.registers:
            if reg.name == name:
                return reg
        raise KeyError(f"no register named {name!r}; known: {', '.join(r.name for r in self.registers)}")

    def __iter__(self):
        return iter(self.registers)

    def __contains__(self, name):
        return any(reg.name == name for reg in self.registers)

    def extend(self, *registers) -> "RegisterMap":
        return RegisterMap(self.registers + tuple(registers))

    @property
    def address_width(self) -> int:
        top = max((reg.offset for reg in self.registers), default=0) + 4
        return max(top - 1, 1).bit_length()


def _shell_registers():
    regs = [
        Register("CTRL", 0x00, "wo", 2,
                 doc="bit 0: start a job (ignored while busy; the DMA channels are armed by this write); "
                     "bit 1: abort (soft reset of the core and its streams, the job ends without done)"),
        Register("STATUS", 0x04, "ro", 4,
                 doc="bit 0 busy, bit 1 done, bit 2 the input stream ended (TLAST) before IN_BEATS beats, "
                     "bit 3 it went on past IN_BEATS beats or the core finished without taking them all; "
                     "bits 1-3 are cleared by the next start"),
        Register("ID", 0x08, "ro", doc="0x414B4954 ('AKIT')"),
        Register("INFO", 0x0C, "ro", doc="bits 0-7 data width in bytes, bits 8-31 accelerator-defined"),
    ]
    counters = [
        ("CYCLES", "cycles from the start write to done"),
        ("BUSY_CYCLES", "cycles in which the compute array did useful work"),
        ("IN_STALL_CYCLES", "cycles the array idled waiting for input data still streaming in"),
        ("OUT_STALL_CYCLES", "cycles the output stream was held off by the receiver"),
        ("MACS_LO", "multiply-accumulates issued to the array (low word)"),
        ("MACS_HI", "multiply-accumulates issued to the array (high word)"),
    ]
    regs += [Register(name, 0x10 + 4 * i, "ro", doc=doc) for i, (name, doc) in enumerate(counters)]
    regs += [
        Register("IN_BEATS", 0x28, "rw", 32,
                 doc="beats of the job's input stream, latched at start; TLAST must come on the last of them "
                     "(0: not checked)"),
        Register("GIE", 0x2C, "rw", 1, doc="global interrupt enable (ap_ctrl_hs style): irq = GIE & |(IER & ISR)"),
        Register("IER", 0x30, "rw", 1, doc="interrupt enable, bit 0: done"),
        Register("ISR", 0x34, "w1c", 1, doc="interrupt status, bit 0: a job ended; write 1 to acknowledge"),
    ]
    return RegisterMap(tuple(regs))


#: Registers every accelkit accelerator has, whatever its core.
SHELL_REGISTERS = _shell_registers()
