"""The multi-host test harness: Docker-in-Docker "hosts" reached by Ansible over SSH (docs/testing.md)."""
