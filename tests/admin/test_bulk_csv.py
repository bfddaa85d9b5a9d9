"""The bulk upload's CSV reader: every malformed file is a 4xx problem with its own code, never a
500 (schemathesis once sent a header line with a bare carriage return, which made ``csv`` raise
before the reader's own error handling)."""

from __future__ import annotations

import pytest

from admin.bulk import parse_csv
from core.errors import Problem


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x03\xc2\xa3R5\r\xc2\x92\xf3\xb4\x98\x90\t\xc2\xa33", "admin.bulk_bad_header"),  # found by schemathesis
        (b"name,id_number\r\na,b\r\n", "admin.bulk_bad_header"),
        (b"\xff\xfe", "admin.bulk_not_utf8"),
        (b"name,id_number,csr\r\n", "admin.bulk_empty"),
        (b"name,id_number,csr\r\na,b," + b"A" * 200_000 + b"\r\n", "admin.bulk_bad_csv"),  # beyond csv's field limit
    ],
)
def test_malformed_uploads_are_problems(data: bytes, code: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_csv(data)
    assert caught.value.code == code and caught.value.status < 500


def test_rows_with_carriage_returns_inside_quotes() -> None:
    rows = parse_csv(b'name,id_number,csr\r\n"Li\rMing",110101199001011234,"-----BEGIN CERTIFICATE REQUEST-----\r\nAA==\r\n-----END CERTIFICATE REQUEST-----"\r\n')
    assert rows[0]["name"] == "Li\rMing" and rows[0]["csr"].startswith("-----BEGIN") and rows[0]["id_number"] == "110101199001011234"
