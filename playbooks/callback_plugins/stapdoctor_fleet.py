"""stdout callback for `stapdoctor fleet`: one JSON line per host result, printed as it arrives.

Why: the fleet reads each host's collector output while Ansible still works on the others, and keeps
nothing it does not need: results are not held in this process (a 500-host run would hold every
snapshot twice), and `stdout_lines`/`stderr_lines` (copies of stdout/stderr) are dropped.
Use: ANSIBLE_STDOUT_CALLBACK=stapdoctor_fleet with playbooks/ansible.cfg (callback_plugins is set there).
"""

from __future__ import annotations

import json
import sys

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: stapdoctor_fleet
    type: stdout
    short_description: one JSON line per host result (JSON Lines), for stapdoctor fleet
    description:
      - "One JSON object per line: event result (play, host, task, status, result), event
        no_hosts_matched (play) and event stats (hosts)."
"""

_KEEP = ("msg", "rc", "stdout", "stderr", "module_stdout", "module_stderr", "exception", "skip_reason",
         "changed")
# A host may send any amount: more than stapdoctor reads (24 MiB of collector output) is cut here, so the
# fleet says "larger than" instead of this process serialising it all.
_MAX_TEXT = 25 * 1024 * 1024


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "stapdoctor_fleet"

    def __init__(self, display=None):
        super().__init__(display)
        self._play = ""

    def _emit(self, event: dict) -> None:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
        sys.stdout.flush()

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()

    def v2_playbook_on_no_hosts_matched(self):
        self._emit({"event": "no_hosts_matched", "play": self._play})

    def _result(self, result, status: str) -> None:
        res = result._result
        kept = {k: res[k] for k in _KEEP if k in res}
        for k, v in kept.items():
            if isinstance(v, str) and len(v) > _MAX_TEXT:
                kept[k] = v[:_MAX_TEXT]
        self._emit({"event": "result", "play": self._play, "host": result._host.get_name(),
                    "task": result._task.get_name(), "status": status, "result": kept})

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        self._emit({"event": "stats", "hosts": {h: stats.summarize(h) for h in sorted(stats.processed)}})
