"""Persons, organisations, departments, staff memberships, operators: one identity per ID number / USCC."""
