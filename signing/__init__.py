"""Seals (PAdES, CAdES/JAdES), verification reports, RFC 3161 timestamp authority."""
