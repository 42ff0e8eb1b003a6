"""Rewrite (or check) the console-output blocks of the docs from real `digitlab` runs.

A block is generated when the line directly above its opening fence names it:

    <!-- output: train-5-epochs -->
    ```
    digitlab 0.1.0: MNIST (60,000 train / 10,000 test, from /data/mnist) | ...
    ```

NAME is a key of OUTPUTS below: the command to run, its environment and which lines to show.

    python tools/doc_outputs.py --write          # run each command once, rewrite the blocks
    python tools/doc_outputs.py --check          # exit 1 listing the blocks that differ
    python tools/doc_outputs.py --check NAME ... # only these outputs (tests run one at a time)

Each command runs in a fresh temporary folder, on the CPU, with OMP_NUM_THREADS pinned: the
losses and accuracies depend on the number of CPU threads, so it is fixed to make them the
same on every machine. Paths are shown as the docs write them (`runs/first`, `/data/mnist`).
The comparison masks only what differs from run to run: durations ("2.3 s") and the
timestamp in a default run folder's name. A block whose masked text is unchanged is not
rewritten, so `--write` does not churn the durations.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "README.bn.md", *sorted((REPO / "docs").rglob("*.md"))]
MARKER = re.compile(r"^( *)<!-- output: ([\w.-]+) -->$")
SHOWN_DATA_DIR = "/data/mnist"
THREADS = "1"  # losses and accuracies change with the thread count; one thread is cheapest
MASKS = [(re.compile(r"\b\d+(\.\d+)? s\b"), "<t> s"),
         (re.compile(r"\b\d{8}-\d{6}-"), "<timestamp>-")]


@dataclass(frozen=True)
class Output:
    argv: tuple[str, ...]  # arguments of `digitlab`
    before: tuple[tuple[str, ...], ...] = ()  # commands run first, in the same folder, not shown
    lang: str = "en"  # DIGITLAB_LANG
    keep: str | None = None  # regex of the lines to show; each run of hidden lines becomes "..."
    mnist: bool = True  # needs the MNIST files (tests skip without them)
    prompt: bool = False  # show the command as a first line, "$ digitlab ..."
    exit_code: int = 0  # what the command must return (2 for a usage error shown in the docs)
    times: bool = True  # False: an epoch line's closing "| 2.3 s" is shown as "| ..."
    gaps: bool = True  # False: hidden lines leave no "..." behind


# the header, the first two batch lines, the first and last epoch, the result
FIRST_EPOCHS = r"digitlab |Epoch \[1/5\], Batch \[(0|100)/|Epoch (1|5) finished|Test Acc|MNIST:"
OUTPUTS = {
    "train-5-epochs": Output(("train", "--device", "cpu"), keep=FIRST_EPOCHS),
    "rprop-weight-decay": Output(
        ("train", "--dataset", "digits", "--epochs", "1", "--set", "optim.name=rprop",
         "--set", "optim.weight_decay=1e-4"), mnist=False, prompt=True, exit_code=2),
    "sparse-adam": Output(
        ("train", "--dataset", "digits", "--set", "optim.name=sparse-adam",
         "--out", "/tmp/me/sparse"),
        mnist=False, prompt=True, exit_code=2),
    "train-1-epoch-bn": Output(("train", "--epochs", "1", "--device", "cpu"), lang="bn",
                               keep=r"digitlab |ইপক \[1/1\], ব্যাচ \[(0|100)/|ইপক 1 শেষ|"
                                    r"টেস্ট অ্যাকুরেসি:|MNIST:"),
    "epoch-summaries": Output(("train", "--device", "cpu"), keep=r"Epoch \d+ finished|Test Acc",
                              times=False, gaps=False),
    "evaluate-first": Output(
        ("evaluate", "runs/first", "--device", "cpu"),
        before=(("train", "--epochs", "1", "--out", "runs/first", "--device", "cpu"),)),
}


def mnist_dir() -> Path | None:
    """$DIGITLAB_DATA when set, else ../shared/data/mnist; None when it is not a folder."""
    env = os.environ.get("DIGITLAB_DATA")
    folder = Path(env).expanduser() if env else REPO.parent / "shared" / "data" / "mnist"
    return folder.resolve() if folder.is_dir() else None


def run(output: Output) -> str:
    """The lines `output` shows, from a real run in a temporary folder."""
    env = {**os.environ, "DIGITLAB_LANG": output.lang, "OMP_NUM_THREADS": THREADS}
    data = mnist_dir()
    if output.mnist:
        if data is None:
            sys.exit("doc_outputs: MNIST files not found; set DIGITLAB_DATA to their folder")
        env["DIGITLAB_DATA"] = str(data)
    with tempfile.TemporaryDirectory(prefix="doc-outputs-") as tmp:
        for argv, expected in [*((argv, 0) for argv in output.before),
                               (output.argv, output.exit_code)]:
            done = subprocess.run([sys.executable, "-m", "digitlab", *argv], cwd=tmp, env=env,
                                  capture_output=True, text=True)
            if done.returncode != expected:
                sys.exit(f"doc_outputs: `digitlab {' '.join(argv)}` exited {done.returncode}, "
                         f"not {expected}:\n{done.stderr}")
        text = (done.stdout + done.stderr).replace(tmp + os.sep, "")
    if output.prompt:
        text = f"$ digitlab {' '.join(output.argv)}\n{text}"
    if data is not None:
        text = text.replace(str(data), SHOWN_DATA_DIR)
    lines = shown(text.splitlines(), output.keep)
    if not output.gaps:
        lines = [line for line in lines if line != "..."]
    if not output.times:
        lines = [re.sub(r"\| \d+(\.\d+)? s$", "| ...", line) for line in lines]
    return "\n".join(lines)


def shown(lines: list[str], keep: str | None) -> list[str]:
    if keep is None:
        return lines
    out = []
    for line in lines:
        if re.match(keep, line):
            out.append(line)
        elif not out or out[-1] != "...":
            out.append("...")
    return out


def masked(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def blocks(page: Path) -> list[tuple[str, int, int]]:
    """(name, indent, first line, end line) of each marked block's body in `page`."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for i, line in enumerate(lines):
        match = MARKER.match(line)
        if not match:
            continue
        indent, name = match.groups()
        where = f"{page.relative_to(REPO)}:{i + 1}"
        if name not in OUTPUTS:
            sys.exit(f"doc_outputs: {where}: unknown output {name!r}; add it to OUTPUTS in "
                     f"tools/doc_outputs.py or fix the name")
        if i + 1 >= len(lines) or not lines[i + 1].startswith(indent + "```"):
            sys.exit(f"doc_outputs: {where}: the line after the marker must open a ``` block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith(indent + "```")),
                   None)
        if end is None:
            sys.exit(f"doc_outputs: {where}: the block is never closed")
        found.append((name, indent, i + 2, end))
    return found


def marked_names() -> set[str]:
    return {name for page in PAGES for name, *_ in blocks(page)}


def sync(names: list[str], write: bool) -> list[str]:
    """Compare (and with `write`, rewrite) the blocks of `names`; returns those that differed."""
    fresh = {name: run(OUTPUTS[name]) for name in names}
    stale = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
        changed = False
        for name, indent, start, end in reversed(blocks(page)):
            if name not in fresh:
                continue
            new = [f"{indent}{line}".rstrip() + "\n" for line in fresh[name].split("\n")]
            if masked("".join(lines[start:end])) != masked("".join(new)):
                stale.append(f"{page.relative_to(REPO)}:{start - 1} ({name})")
                lines[start:end] = new
                changed = True
        if write and changed:
            page.write_text("".join(lines), encoding="utf-8")
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the marked blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 if a block is out of date")
    parser.add_argument("names", nargs="*", help=f"outputs to do (default all: {list(OUTPUTS)})")
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in OUTPUTS]
    if unknown:
        parser.error(f"unknown output(s) {unknown}; choose from {list(OUTPUTS)}")
    stale = sync(args.names or sorted(marked_names()), write=args.write)
    for where in stale:
        print(f"{'rewrote' if args.write else 'out of date'}: {where}")
    if stale and args.check:
        print("run: python tools/doc_outputs.py --write", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
