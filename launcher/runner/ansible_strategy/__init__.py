"""Ansible strategy plugins of the launcher (a folder Ansible reads by ANSIBLE_STRATEGY_PLUGINS)."""
