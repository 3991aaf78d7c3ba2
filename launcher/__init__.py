"""ovms-launcher: deploy OpenVINO Model Server and its clients with Ansible."""

import os

# the package's version (pyproject.toml reads it) and the collection's (galaxy.yml says the same)
__version__ = "1.0.0"

# gRPC's fork support (on by default) restarts its epoll poller in every forked child; since grpcio
# 1.81 that child aborts ("epoll_wait error: Bad file descriptor", SIGABRT) when it closes its file
# descriptors before exec, as pexpect and subprocess do (grpc/grpc#43055, open). The launcher forks
# ansible-playbook through ansible-runner's pexpect, and its benchmarks and tests fork docker and ssh
# from processes that hold gRPC channels; none of them uses gRPC in a forked child. gRPC reads the
# variable once, at its first use: importing this package sets it first. An explicit value wins.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
