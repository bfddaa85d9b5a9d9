from __future__ import annotations

import json
import logging

from core.logs import JsonFormatter
from core.pii import mask_id_number, mask_phone, mask_text


def test_masks() -> None:
    assert mask_id_number("460102199001011234") == "460102********1234"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_text("id=46010219900101123X tel 13812345678.") == "id=460102********123X tel 138****5678."
    # serial numbers and longer digit runs are not mistaken for ID numbers
    assert mask_text("serial 4601021990010112345678") == "serial 4601021990010112345678"


def test_json_logs_mask_pii() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "login for %s from %s", ("46010219900101123X", "13812345678"), None)
    record.extra_field = {"phone": "13912345678"}
    line = JsonFormatter().format(record)
    assert "46010219900101123X" not in line and "13812345678" not in line and "13912345678" not in line
    assert json.loads(line)["message"] == "login for 460102********123X from 138****5678"
