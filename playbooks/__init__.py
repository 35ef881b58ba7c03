"""Triage and response playbooks (issue 8); empty in the walking skeleton."""
