"""Progress you can see: plain lines when the output goes to a file (every 10 steps or 30 s, and the last step),
a tqdm bar in a terminal with the evaluation lines written above it, never over it."""

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

from battery import REPO

PAIRS = [{"anchor": f"question {i}", "positive": f"passage {i} " * (1 + i % 4)} for i in range(64)]
IR = {"questions": {"q1": "What is A?", "q2": "What is B?"}, "corpus": {"p1": "A is first.", "p2": "B is second."},
      "relevant_contexts": {"q1": ["p1"], "q2": ["p2"]}}


def _args(tmp_path, model):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    (tmp_path / "val.json").write_text(json.dumps(IR))
    return [sys.executable, str(REPO / "train.py"), "--base", str(model), "--train", str(tmp_path / "pairs.jsonl"),
            "--eval", str(tmp_path / "val.json"), "--batch-size", "8", "--epochs", "3", "--max-steps", "24",
            "--eval-steps", "5", "--matryoshka-dims", "none", "--output", str(tmp_path / "model")]


def test_plain_progress_lines_when_not_a_terminal(tmp_path, tiny_bert_folder):
    result = subprocess.run(_args(tmp_path, tiny_bert_folder), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-1500:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    steps = [int(re.match(r"step (\d+)/24 \(epoch [\d.]+\): loss [\d.]+, [\d.]+ pairs/s, elapsed \d+m\d\ds, "
                          r"ETA \d+m\d\ds$", line).group(1)) for line in lines]
    assert steps == [10, 20, 24], result.stdout
    assert "\r" not in result.stdout + result.stderr  # no bar drawn into a file


def test_bar_and_evaluation_lines_in_a_terminal(tmp_path, tiny_bert_folder):
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout and stderr are a terminal of 120 x 40
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.execv(sys.executable, _args(tmp_path, tiny_bert_folder))
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-1500:]
    assert re.search(r"training: +\d+%\|.*\| \d+/24 \[", text), text[-1500:]  # the bar
    evaluations = [m.start() for m in re.finditer(r"  step \d+ \(epoch [\d.]+\): cosine_map@100", text)]
    assert len(evaluations) >= 4
    for start in evaluations:  # each evaluation line starts on a fresh line, not after the bar's text
        assert text[start - 1] in "\r\n", repr(text[max(0, start - 80):start + 20])
    assert not re.search(r"^step \d+/24", text, re.M)  # no plain lines in a terminal
