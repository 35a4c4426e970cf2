"""Ansible filter for check.yml: the snapshot archive inside the fleet collector's output, as base64.

Why: the output format (markers, base64 or hex) is defined once, in stapdoctor.doctor.collected, which
`stapdoctor fleet` uses too; check.yml's standalone mode writes the archive with this filter.
"""

from __future__ import annotations

import base64

from ansible.errors import AnsibleFilterError


def stapdoctor_collected_b64(stdout: str) -> str:
    try:
        from stapdoctor.doctor import collected
    except ImportError as err:  # pragma: no cover - depends on the controller's install
        raise AnsibleFilterError(f"stapdoctor is not importable on the controller ({err})") from err
    try:
        return base64.b64encode(collected.decode_output(str(stdout))).decode("ascii")
    except collected.CollectedError as err:
        raise AnsibleFilterError(f"stapdoctor collector output: {err}") from err


class FilterModule:
    def filters(self):
        return {"stapdoctor_collected_b64": stapdoctor_collected_b64}
