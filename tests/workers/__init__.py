"""Workflow code and worker scripts the end-to-end tests run (in-process and as subprocesses)."""
