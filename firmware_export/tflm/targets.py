"""Build targets: which compiler and flags build TFLM and a program for a board's CPU.

``host-64`` is the x86-64 build (``g++``), ``host-32`` the same with ``-m32`` (the pointer size
of every MCU, used where a board's CPU has no emulator here: ESP32-S3's Xtensa), and
``cortex-m0plus`` / ``cortex-m4`` / ``cortex-m7`` are ``arm-none-eabi-g++`` builds with the flags
of TFLM's own ``cortex_m_qemu`` target (newlib semihosting, ``--specs=rdimon.specs``), which run
under ``qemu-system-arm`` on an Arm MPS2 board. QEMU 7.2 has no Cortex-M0+ board big enough for
a model, so M0+ builds (ARMv6-M, a subset of ARMv7-M) run on the Cortex-M3 board.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.boards import BoardProfile
from edge.errors import ExportError

CXX_FLAGS = ("-std=c++17", "-O2", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics",
             "-DTF_LITE_STATIC_MEMORY")
C_FLAGS = ("-std=c11", "-O2", "-DTF_LITE_STATIC_MEMORY")
HOST_DEFINES = ("-DTF_LITE_DISABLE_X86_NEON", "-DTF_LITE_USE_CTIME")
ARM_FLAGS = ("-mthumb", "-mfloat-abi=soft", "-funsigned-char", "-fomit-frame-pointer",
             "--specs=rdimon.specs", "-ffunction-sections", "-fdata-sections",
             "-DTF_LITE_MCU_DEBUG_LOG")
CMSIS_NN_DEFINES = ("-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0")


@dataclass(frozen=True)
class Emulator:
    """``qemu-system-arm -M machine -cpu cpu``."""

    machine: str
    cpu: str


@dataclass(frozen=True)
class Target:
    """One way to compile: compilers, code-generation flags, ABI facts, how to run the result."""

    name: str
    cxx: str
    cc: str
    arch_flags: tuple[str, ...]  # code generation: used for the library and every program
    defines: tuple[str, ...]
    pointer_size: int
    short_enums: bool  # arm-none-eabi's ABI: enums as small as their values
    emulator: Emulator | None = None
    cmsis_cpu: tuple[str, ...] = ()  # CMSIS device defines, for CMSIS-NN trees

    @property
    def is_arm(self) -> bool:
        return self.emulator is not None

    def cxx_command(self) -> list[str]:
        return [self.cxx, *self.arch_flags, *CXX_FLAGS, *self.defines]

    def cc_command(self) -> list[str]:
        return [self.cc, *self.arch_flags, *C_FLAGS, *self.defines]


def _arm(cpu: str, machine: str, qemu_cpu: str, cmsis: tuple[str, ...]) -> Target:
    return Target(cpu, "arm-none-eabi-g++", "arm-none-eabi-gcc", (f"-mcpu={cpu}", *ARM_FLAGS),
                  (), 4, True, Emulator(machine, qemu_cpu), cmsis)


TARGETS: dict[str, Target] = {
    "host-64": Target("host-64", "g++", "gcc", (), HOST_DEFINES, 8, False),
    "host-32": Target("host-32", "g++", "gcc", ("-m32",), HOST_DEFINES, 4, False),
    "cortex-m0plus": _arm("cortex-m0plus", "mps2-an385", "cortex-m3",
                          ("-DARMCM0plus", "-DCPU_M0PLUS=1")),
    "cortex-m3": _arm("cortex-m3", "mps2-an385", "cortex-m3", ("-DARMCM3", "-DCPU_M3=1")),
    "cortex-m4": _arm("cortex-m4", "mps2-an386", "cortex-m4", ("-DARMCM4", "-DCPU_M4=1")),
    "cortex-m7": _arm("cortex-m7", "mps2-an500", "cortex-m7", ("-DARMCM7", "-DCPU_M7=1")),
}


def get_target(name: str) -> Target:
    """The target called ``name``.

    Raises:
        ExportError: no such target.
    """
    try:
        return TARGETS[name]
    except KeyError:
        raise ExportError(f"unknown TFLM build target {name!r}; choose one of "
                          f"{', '.join(TARGETS)}") from None


def board_target(board: BoardProfile) -> tuple[Target, str]:
    """The target that verifies ``board``'s firmware, and why when it is not the board's CPU."""
    if board.cpu in TARGETS and TARGETS[board.cpu].is_arm:
        return TARGETS[board.cpu], ""
    return TARGETS["host-32"], (f"{board.name}'s CPU ({board.cpu or 'unknown'}) has no emulator "
                                "here; verified with a 32-bit host build (same pointer size, "
                                "x86 ABI)")
