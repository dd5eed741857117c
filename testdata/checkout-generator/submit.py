"""Stand-in for a TensorRT-LLM checkout's own generator (submit.py), written
for disagg-runner's tests; it is not upstream's code and generates nothing
itself. Copied into a test checkout as jenkins/scripts/perf/submit.py (or
jenkins/scripts/perf/disaggregated/submit.py), it takes submit.py's flags
and writes to --launch-sh the bytes of standin_launch.sh beside it, so a
test decides what "the checkout's generator" produces. Files beside it
(all optional except standin_launch.sh) steer it:

  standin_replace_line  "N\\nTEXT": line N of the output becomes TEXT
  standin_exit          "CODE MESSAGE": print MESSAGE on stderr, exit CODE,
                        write nothing
  standin_argv.json     written by every run: its arguments and the
                        environment variables the generator reads

Like upstream's it imports PyYAML, so it fails where PyYAML is missing.
"""
import argparse
import json
import os
import sys

import yaml  # noqa: F401 (imported as upstream imports it: without PyYAML this fails)

here = os.path.dirname(os.path.abspath(__file__))


def beside(name):
    path = os.path.join(here, name)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return f.read()


def main():
    with open(os.path.join(here, "standin_argv.json"), "w") as f:
        json.dump({
            "argv": sys.argv[1:],
            "env": {k: os.environ.get(k) for k in ("TRTLLM_DISAGG_CT_PRECHECK", "LLM_MODELS_ROOT")},
        }, f)
        f.write("\n")

    p = argparse.ArgumentParser()
    p.add_argument("--run-ci", action="store_true")
    for flag in ("--llm-src", "--test-list", "--draft-launch-sh", "--launch-sh", "--run-sh",
                 "--install-sh", "--script-prefix", "--srun-args"):
        p.add_argument(flag, required=True)
    p.add_argument("--split-group", type=int, default=0)
    p.add_argument("--stage-name", default="")
    p.add_argument("--cluster-name", default="")
    args = p.parse_args()

    fail = beside("standin_exit")
    if fail is not None:
        code, _, message = fail.decode().strip().partition(" ")
        print(message, file=sys.stderr)
        sys.exit(int(code))

    out = beside("standin_launch.sh")
    if out is None:
        sys.exit("stand-in submit.py: no standin_launch.sh beside " + __file__)
    edit = beside("standin_replace_line")
    if edit is not None:
        n, _, text = edit.decode().partition("\n")
        lines = out.split(b"\n")
        lines[int(n) - 1] = text.rstrip("\n").encode()
        out = b"\n".join(lines)
    with open(args.launch_sh, "wb") as f:
        f.write(out)
    print("Launch script generated at: " + args.launch_sh)


if __name__ == "__main__":
    main()
