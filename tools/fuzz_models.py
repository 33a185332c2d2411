"""Fork-server fuzzing of the in-process model paths with semantic mutants of real models.

The parent imports everything once (numpy, edge, the interpreter), then forks one child per
mutant, so each costs a fork rather than an interpreter start. A child runs what edge does in
its own process with a model: read and check it (edge-inspect, edge-classify, edge-run,
edge-export, edge-flash all start so), analyse it and plan its arena (edge-inspect,
edge-export), and, when it passed, what edge-classify and edge-run would hand to LiteRT: build
the interpreter, allocate, invoke once on zeros. The child's exit status tells the outcome; a
signal is a crash, the alarm a hang. Prints the count of each outcome per stage, and the
mutations behind every crash, traceback and hang.

    python tools/fuzz_models.py --count 3000
    python tools/fuzz_models.py --model ../shared/data/models/person_detect.tflite --count 500

What must hold: ``crash``, ``traceback`` and ``hang`` are 0 for the checks edge runs in its own
process. ``litert-crash`` and ``litert-hang`` count mutants that passed every check and still
broke LiteRT: the commands load such a model in a child process first (edge.runtime.first_load), so
they cost one line and exit 2, but each is a rule edge.model.semantics could still learn.
"""

from __future__ import annotations

import argparse
import collections
import mmap
import os
import random
import resource
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.errors import EdgeError  # noqa: E402
from edge.model import read_model  # noqa: E402
from edge.model.analysis import analyze  # noqa: E402
from edge.runtime.resources import check_activation_memory  # noqa: E402
from firmware_export.plan.arena import plan_arena  # noqa: E402
from tests.model_mutants import mutate, mutation_sites  # noqa: E402

DEFAULT_MODELS = (ROOT / "edge" / "demo" / "demo_model.tflite",
                  ROOT.parent / "shared" / "data" / "models" / "person_detect.tflite",
                  ROOT.parent / "shared" / "data" / "models" / "mobilenet_v1_0.25_128_quant.tflite")
OUTCOMES = {0: "loaded and ran", 10: "refused by edge", 11: "refused by LiteRT (clean error)",
            20: "traceback"}
GOOD = frozenset({OUTCOMES[0], OUTCOMES[10], OUTCOMES[11]})
MEMORY_LIMIT = 3 << 30


def child(content: bytes, stage: mmap.mmap) -> int:
    """The in-process paths on one mutant; the exit code names the outcome."""
    try:
        model = read_model(content, "mutant")
        check_activation_memory(model, 256 << 20)
        analyze(model)
        plan_arena(model, pointer_size=4)
    except EdgeError:
        return 10
    except Exception:
        return 20
    from ai_edge_litert.interpreter import Interpreter

    stage[0] = 1
    try:
        interpreter = Interpreter(model_content=content, num_threads=1)
        interpreter.allocate_tensors()
        interpreter.invoke()
    except (ValueError, RuntimeError):
        return 11
    return 0


def start(content: bytes, timeout: int) -> tuple[int, mmap.mmap]:
    stage = mmap.mmap(-1, 1)  # shared with the child: 1 once it hands the model to LiteRT
    pid = os.fork()
    if pid == 0:
        code = 30
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
            signal.alarm(timeout)
            code = child(content, stage)
        finally:
            os._exit(code)
    return pid, stage


def outcome_of(status: int, stage: mmap.mmap) -> str:
    where = "litert-" if stage[0] else ""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"{where}hang" if sig == signal.SIGALRM else \
            f"{where}crash ({signal.Signals(sig).name})"
    return OUTCOMES.get(os.WEXITSTATUS(status), f"exit {os.WEXITSTATUS(status)}")


def fuzz(bases: list[tuple[str, bytes]], args: argparse.Namespace
         ) -> tuple[collections.Counter[str], dict[str, list[str]]]:
    rng = random.Random(args.seed)
    sites = {name: mutation_sites(content) for name, content in bases}
    counts: collections.Counter[str] = collections.Counter()
    examples: dict[str, list[str]] = collections.defaultdict(list)
    running: dict[int, tuple[mmap.mmap, str]] = {}
    for i in range(args.count + args.jobs):
        if i < args.count:
            name, content = bases[i % len(bases)]
            mutant = mutate(content, sites[name], rng, rng.randint(1, args.max_edits))
            pid, stage = start(mutant.content, args.timeout)
            running[pid] = (stage, f"{name}: {mutant.description}")
        while running and (len(running) >= args.jobs or i >= args.count):
            pid, status = os.wait()
            stage, description = running.pop(pid)
            outcome = outcome_of(status, stage)
            counts[outcome] += 1
            if outcome not in GOOD:
                examples[outcome].append(description)
            if i < args.count:
                break
    return counts, examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", type=Path,
                        help="model to mutate (repeatable; default: the demo model, "
                             "person_detect and MobileNetV1 0.25)")
    parser.add_argument("--count", type=int, default=2000, help="mutants in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-edits", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=20, help="seconds before a hang")
    parser.add_argument("--jobs", type=int, default=2, help="children at a time")
    parser.add_argument("--show", type=int, default=10, help="mutations listed per bad outcome")
    args = parser.parse_args(argv)
    models = [p for p in (args.model or DEFAULT_MODELS) if p.is_file()]
    if not models:
        print("no model to mutate", file=sys.stderr)
        return 2
    bases = [(p.name, p.read_bytes()) for p in models]
    counts, examples = fuzz(bases, args)
    print(f"{args.count} mutants of {', '.join(n for n, _ in bases)} (seed {args.seed}, "
          f"1-{args.max_edits} edits each)")
    for outcome, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {outcome:28s} {n:6d}")
    for outcome, found in examples.items():
        print(f"{outcome}:")
        for line in found[:args.show]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
